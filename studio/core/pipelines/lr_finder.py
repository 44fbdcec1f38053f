"""The learning-rate range test (Smith, "Cyclical Learning Rates", 2017; fastai's lr_find):
train a copy of the compressed model for a few steps while the learning rate grows
exponentially, watch the smoothed loss, and suggest a rate a decade below the one where the
loss was lowest. The steps use the same loss as fine-tuning; the original is never touched."""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import torch

from studio.core.base.cancel import CancelToken, Cancelled
from studio.core.pipelines.compress import compress
from studio.core.data.dataset import Dataset
from studio.core.base.errors import StudioError
from studio.core.base.events import Finished, LrProbe, Progress, RunCancelled, StageStarted
from studio.core.pipelines.finetune import FinetuneSettings, adamw, model_family, param_groups
from studio.core.pipelines.finetune_loop import TrainingLoss
from studio.core.model.loaded_model import LoadedModel
from studio.core.plan import CompressionPlan

SMOOTHING = 0.9       # EMA of the loss (bias-corrected): single noisy batches must not decide
STOP_FACTOR = 4.0     # stop once the smoothed loss is this many times its minimum


@dataclass(frozen=True)
class LrFinderResult:
    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    suggested: float | None
    lr_at_min: float | None
    default_lr: float       # what "auto" would use for this model
    family: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("lrs", "losses", "smoothed"):
            out[key] = list(out[key])
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LrFinderResult:
        return cls(**{**data, **{k: tuple(data[k]) for k in ("lrs", "losses", "smoothed")}})


def suggest(lrs: list[float], smoothed: list[float]) -> tuple[float | None, float | None, str]:
    """(suggested lr, lr at the loss minimum, why): a decade below the minimum, where the loss
    still falls steadily; None when the loss never fell (the range or the data is wrong)."""
    finite = [(lr, s) for lr, s in zip(lrs, smoothed) if math.isfinite(s)]
    if len(finite) < 3:
        return None, None, "too few finite losses to read a curve"
    lr_min, s_min = min(finite, key=lambda p: p[1])
    if s_min >= finite[0][1] * 0.999 or lr_min == finite[0][0]:
        return None, lr_min, "the loss never fell below its starting value in this range"
    return lr_min / 10, lr_min, f"the smoothed loss was lowest at lr {lr_min:.2g}; a tenth of that trains steadily"


def find_lr(loaded: LoadedModel, plan: CompressionPlan | None, dataset: Dataset,
            settings: FinetuneSettings | None = None, cancel: CancelToken | None = None, *,
            start_lr: float = 1e-7, end_lr: float = 1.0, steps: int = 100) -> Iterator[object]:
    """Events: compression's, then LrProbe per step, then Finished(LrFinderResult)."""
    settings = settings or FinetuneSettings()
    cancel = cancel or CancelToken()
    if not (0 < start_lr < end_lr <= 10 and math.isfinite(end_lr)):
        raise StudioError(f"The learning-rate range must satisfy 0 < start < end ≤ 10, not {start_lr:g} … {end_lr:g}.")
    if steps < 10:
        raise StudioError(f"A learning-rate range test needs at least 10 steps, not {steps}.")
    if not settings.distill and not dataset.labeled:
        raise StudioError(f"{dataset.name} has no labels: run the test with distillation instead.")
    torch.manual_seed(settings.seed)
    stage = "compress"
    try:
        result = None
        calibration = [(a, k) for a, k, _ in dataset.batches("train", 32, pad="longest")][:8]
        for event in compress(loaded, plan or CompressionPlan(), cancel, batches=[], calibration=calibration):
            if isinstance(event, Finished):
                result = event.result
            else:
                yield event
        student = copy.deepcopy(result.compressed)  # untouched layers are shared with the original
        stage = "find-lr"
        defaults = model_family(student)
        yield StageStarted("find-lr", f"{steps} steps, lr {start_lr:g} → {end_lr:g} on {dataset.name}")
        loss_fn = TrainingLoss(loaded.module.eval(), student, settings, torch.device("cpu"))
        optimizer = adamw(param_groups(student, 0.0), start_lr)
        lrs, losses, smoothed = [], [], []
        avg, best = 0.0, math.inf
        student.train()
        try:
            for step, batch in enumerate(_cycle(dataset, settings), 1):
                cancel.raise_if_cancelled()
                lr = start_lr * (end_lr / start_lr) ** ((step - 1) / (steps - 1))
                for group in optimizer.param_groups:
                    group["lr"] = lr
                loss = loss_fn(batch)
                value = float(loss.detach())
                avg = SMOOTHING * avg + (1 - SMOOTHING) * value
                smooth = avg / (1 - SMOOTHING ** step)
                lrs.append(lr)
                losses.append(value)
                smoothed.append(smooth if math.isfinite(value) else math.inf)
                yield LrProbe(step, lr, value, smoothed[-1])
                yield Progress(step, steps, f"lr {lr:.2g}")
                if not math.isfinite(value) or smooth > STOP_FACTOR * best or step >= steps:
                    break
                best = min(best, smooth)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(student.parameters(), settings.grad_clip or math.inf)
                optimizer.step()
        finally:
            loss_fn.close()
        suggested, lr_min, reason = suggest(lrs, smoothed)
        yield Finished(LrFinderResult(tuple(lrs), tuple(losses), tuple(smoothed), suggested, lr_min,
                                      defaults.lr, defaults.family, reason))
    except Cancelled:
        yield RunCancelled(stage, f"learning-rate test cancelled during {stage}; the original model is unchanged")


def _cycle(dataset: Dataset, settings: FinetuneSettings) -> Iterator[tuple[Any, ...]]:
    epoch = 0
    while True:
        yield from dataset.batches("train", settings.batch_size, shuffle=True, seed=settings.seed + epoch,
                                   pad="longest")
        epoch += 1
