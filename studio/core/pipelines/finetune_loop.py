"""The fine-tuning loop, built so that fine-tuning is never silently worse than not doing it:
it evaluates on the validation split, keeps the best weights by the task metric (accuracy, or
agreement with the original without labels), stops early when that stops improving, and on a
non-finite or exploding loss goes back to the last good weights with a lower learning rate
(a few times, then stops with a clear error). If nothing beats the start, the start is kept."""

from __future__ import annotations

import copy
import math
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import torch
from torch import nn

from studio.core.base.cancel import CancelToken
from studio.core.data.dataset import Dataset
from studio.core.base.errors import StudioError
from studio.core.pipelines.evaluate import Metrics, validation_metrics
from studio.core.base.events import Metric, Note, Progress, StageStarted, Warning
from studio.core.pipelines.bn_recalibration import freeze_batchnorm
from studio.core.pipelines.attention_distill import AttentionLoss
from studio.core.pipelines.attention_distill import running as attention_running
from studio.core.pipelines.finetune_dropout import attention_dropout
from studio.core.pipelines.finetune import (FinetuneSettings, HiddenCapture, Resolved, distillation_loss, hidden_mse,
                                  adamw, lr_factor, param_groups, resolve)
from studio.core.model.measure import primary_output

EXPLODE_RATIO = 5.0   # a loss this many times its running mean (and ≥ 1 above it) has exploded
BACKOFF = 0.1         # lr factor after each divergence
MAX_BACKOFFS = 3


@dataclass(frozen=True)
class FinetuneOutcome:
    """What fine-tuning did; `best` are the validation metrics of the weights it kept."""

    resolved: Resolved
    metric: str
    start: Metrics
    best: Metrics
    best_step: int
    steps: int
    improved: bool
    stopped: str          # "completed" | "early stop" | "max_steps"
    backoffs: int
    final_lr: float
    seconds: float
    seconds_per_epoch: float

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["resolved"] = self.resolved.to_dict()
        out["start"], out["best"] = self.start.to_dict(), self.best.to_dict()
        out["kept"] = "best" if self.improved else "start"
        return out


def to_device(batch: tuple[Any, ...], device: torch.device):
    args, kwargs, labels = batch
    move = (lambda t: t.to(device)) if device.type != "cpu" else (lambda t: t)
    return (tuple(move(a) for a in args), {k: move(v) for k, v in kwargs.items()},
            None if labels is None else move(labels))


class TrainingLoss:
    """One step's loss: distillation from the teacher (or the labels), plus hidden-state MSE.
    Shared by fine-tuning and the learning-rate range test."""

    def __init__(self, teacher: nn.Module, student: nn.Module, settings: FinetuneSettings,
                 device: torch.device) -> None:
        self.teacher, self.student, self.settings, self.device = teacher, student, settings, device
        self.captures = [HiddenCapture(settings.hidden).attach(m) for m in (student, teacher)] if settings.hidden else []
        # Set by a technique that renumbers layers (dropping): student layer → the original's.
        self.layer_map: dict[str, str] = dict(getattr(student, "studio_layer_map", None) or {})
        self.attention = AttentionLoss.for_settings(teacher, student, settings, self.layer_map)  # TinyBERT maps
        self.autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" else _null

    def __call__(self, batch: tuple[Any, ...]) -> torch.Tensor:
        args, kwargs, labels = to_device(batch, self.device)
        s = self.settings
        with self.autocast(), attention_running(self.attention):
            t_out = None
            if s.distill or self.captures or self.attention is not None:  # else the teacher is not needed
                with torch.no_grad():
                    t_out = primary_output(self.teacher(*args, **kwargs)).float()
            s_out = primary_output(self.student(*args, **kwargs)).float()
            if t_out is not None and s.distill:
                loss = distillation_loss(s_out, t_out, labels, s.alpha, s.temperature)
            else:
                loss = nn.functional.cross_entropy(s_out, labels)
            if self.captures:
                extra = hidden_mse(self.captures[0].outputs, self.captures[1].outputs, self.layer_map)
                if extra is not None:
                    loss = loss + s.hidden_weight * extra
            if self.attention is not None and (extra := self.attention.loss()) is not None:
                loss = loss + s.attention_weight * extra
        return loss

    def close(self) -> None:
        for capture in self.captures:
            capture.detach()
        if self.attention is not None:
            self.attention.close()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def metric_points(step: int, metrics: Metrics) -> list[Metric]:
    return [Metric(step, f"val/{k}", float(v)) for k, v in metrics.to_dict().items() if k != "samples"]


class _Divergence(Exception):
    def __init__(self, step: int, what: str) -> None:
        super().__init__(what)
        self.step, self.what = step, what


def train_mode(model: nn.Module, resolved: Resolved) -> None:
    """Training mode; with frozen BatchNorm its layers keep normalising with their (recalibrated)
    running statistics, so what is trained is what evaluation sees (small or domain-shifted
    batches otherwise train one normalisation and evaluate another)."""
    model.train()
    if resolved.batchnorm == "frozen":
        freeze_batchnorm(model)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def finetune(teacher: nn.Module, student: nn.Module, dataset: Dataset, settings: FinetuneSettings,
             reference: list[torch.Tensor], start: Metrics, masks: list[tuple[torch.Tensor, torch.Tensor]],
             cancel: CancelToken, device: torch.device) -> Iterator[object]:
    """Fine-tune `student` in place (it ends on the CPU holding the kept weights); events out,
    the FinetuneOutcome as the generator's return value."""
    per_epoch = dataset.steps("train", settings.batch_size)
    total = settings.epochs * per_epoch
    if settings.max_steps:
        total = min(total, settings.max_steps)
    resolved = resolve(settings, student, total)
    student.to(device)
    masks = [(weight, mask.to(weight.device)) for weight, mask in masks]  # the weights moved; their masks follow
    optimizer = adamw(param_groups(student, resolved.weight_decay, resolved.head_lr), resolved.lr)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    yield StageStarted("finetune", f"{settings.epochs} epoch(s), {total} steps on {device.type}"
                       + (", distillation" if settings.distill else "") + f"; {resolved.describe()}")
    yield Note(f"learning rate {resolved.lr:g}: {resolved.why}")
    loss_fn = TrainingLoss(teacher, student, settings, device)
    moved = [f"{k.rsplit('.', 1)[-1]}←{v.rsplit('.', 1)[-1]}" for k, v in loss_fn.layer_map.items()]
    if settings.hidden and loss_fn.layer_map:
        yield Note(f"hidden-state distillation maps student ← teacher layers {', '.join(moved)} "
                   f"({next(iter(loss_fn.layer_map)).rsplit('.', 1)[0]})")
    metric = start.task_metric
    best, best_key, best_step, best_state = start, start.key(), 0, _state(student)
    good = (_state(student), copy.deepcopy(optimizer.state_dict()), None)  # weights, optimizer, running loss
    scale, backoffs, since_best, stopped = 1.0, 0, 0, "completed"
    ema: float | None = None
    step, last_eval, t0 = 0, 0, time.perf_counter()
    restore = ExitStack()  # the model's own attention dropout comes back when fine-tuning ends
    try:
        restore.enter_context(attention_dropout(student, resolved.attention_dropout))
        for epoch in range(settings.epochs):
            if step >= total or stopped == "early stop":
                break
            train_mode(student, resolved)
            for batch in dataset.batches("train", settings.batch_size, shuffle=True, seed=settings.seed + epoch,
                                         pad="longest"):
                if step >= total:
                    break
                cancel.raise_if_cancelled()
                lr = resolved.lr * scale * lr_factor(step, resolved)
                for group in optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
                try:
                    loss = loss_fn(batch)
                    value = float(loss.detach())
                    if not math.isfinite(value):
                        raise _Divergence(step + 1, f"the loss became {value}")
                    if ema is not None and ema > 0 and value > EXPLODE_RATIO * ema and value > ema + 1.0:
                        raise _Divergence(step + 1, f"the loss jumped to {value:.3g} (running mean {ema:.3g})")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    norm = torch.nn.utils.clip_grad_norm_(params, resolved.grad_clip or math.inf)
                    if not math.isfinite(float(norm)):
                        raise _Divergence(step + 1, "the gradients became non-finite")
                except _Divergence as diverged:
                    backoffs += 1
                    if backoffs > MAX_BACKOFFS:
                        raise StudioError(
                            f"Fine-tuning diverged at step {diverged.step} ({diverged.what}) even after lowering "
                            f"the learning rate {MAX_BACKOFFS} times to {resolved.lr * scale:g}; nothing was "
                            "saved. Lower settings.finetune.lr or check the data.") from None
                    student.load_state_dict(good[0])
                    optimizer.load_state_dict(good[1])
                    ema, scale = good[2], scale * BACKOFF
                    yield Warning(f"fine-tuning diverged at step {diverged.step}: {diverged.what}; back to the "
                                  f"last good weights with the learning rate lowered to {resolved.lr * scale:g}")
                    continue
                optimizer.step()
                with torch.no_grad():
                    for weight, mask in masks:
                        weight.mul_(mask)
                step += 1
                ema = value if ema is None else 0.9 * ema + 0.1 * value
                yield Metric(step, "train/loss", value)
                yield Progress(step, total, f"epoch {epoch + 1}/{settings.epochs}, "
                                            f"{(time.perf_counter() - t0) / step:.3f} s/step")
                if step % resolved.eval_interval and step != total:
                    continue
                cancel.raise_if_cancelled()
                metrics, _ = yield from validation_metrics(student, dataset, cancel, "validation", device=device,
                                                           reference=reference)  # scored batch by batch
                train_mode(student, resolved)
                yield from metric_points(step, metrics)
                yield Metric(step, "train/lr", lr)
                last_eval = step
                if not metrics.finite():
                    raise StudioError(f"Fine-tuning produced non-finite validation metrics at step {step}; "
                                      "nothing was saved. Lower settings.finetune.lr.")
                good = (_state(student), copy.deepcopy(optimizer.state_dict()), ema)
                if metrics.key() > best_key:
                    best, best_key, best_step, best_state, since_best = metrics, metrics.key(), step, good[0], 0
                    yield Metric(step, f"best/{metric}", float(getattr(metrics, metric)))
                else:
                    since_best += 1
                    if settings.patience and since_best >= settings.patience:
                        stopped = "early stop"
                        yield Note(f"stopped early at step {step}: no better {metric} in {since_best} evaluations")
                        break
        if stopped == "completed" and total < settings.epochs * per_epoch:
            stopped = "max_steps"
    finally:
        restore.close()
        loss_fn.close()
        student.to("cpu").eval()
    student.load_state_dict({k: v.cpu() for k, v in best_state.items()})
    if best_step != last_eval:  # the charts end on the kept model's scores
        yield from metric_points(step, best)
    improved = best_step > 0
    start_value = getattr(start, metric)
    if not improved:
        yield Warning(f"fine-tuning never beat the starting {metric} ({start_value:.4g}): kept the compressed "
                      "model's weights from before fine-tuning")
    else:
        yield Note(f"kept the weights of step {best_step}: {metric} {start_value:.4g} → {getattr(best, metric):.4g}")
    seconds = time.perf_counter() - t0
    return FinetuneOutcome(resolved, metric, start, best, best_step, step, improved, stopped, backoffs,
                           resolved.lr * scale, round(seconds, 2), round(seconds * per_epoch / max(step, 1), 2))
