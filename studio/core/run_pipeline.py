"""A compression run: apply the plan, evaluate, optionally fine-tune the compressed model
(knowledge distillation from the original), evaluate again. A generator of events that
honours a cancel token between steps; the original model is never modified."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from torch import nn

from studio.core.cancel import CancelToken, Cancelled
from studio.core.compress_pipeline import CompressionResult, compress
from studio.core.data.sources import Dataset
from studio.core.errors import StudioError
from studio.core.evaluate import Metrics, batch_one, iter_predict, latency_ms, metrics_from
from studio.core.events import Finished, Metric, Progress, RunCancelled, StageStarted
from studio.core.finetune import FinetuneSettings, HiddenCapture, distillation_loss, hidden_mse
from studio.core.loaded_model import LoadedModel
from studio.core.measure import fidelity, figures, primary_output
from studio.core.plan import CompressionPlan

FIDELITY_BATCHES = 8
EVAL_BATCH = 64  # the batch size of evaluate/metrics_from


@dataclass(frozen=True)
class RunResult:
    compression: CompressionResult
    model: nn.Module
    report: dict[str, Any] = field(default_factory=dict)


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _to(batch: tuple[Any, ...], device: torch.device):
    args, kwargs, labels = batch
    move = (lambda t: t.to(device)) if device.type != "cpu" else (lambda t: t)
    return (tuple(move(a) for a in args), {k: move(v) for k, v in kwargs.items()},
            None if labels is None else move(labels))


def run(loaded: LoadedModel, plan: CompressionPlan, dataset: Dataset | None,
        settings: FinetuneSettings | None = None, cancel: CancelToken | None = None) -> Iterator[object]:
    settings = settings or FinetuneSettings()
    cancel = cancel or CancelToken()
    torch.manual_seed(settings.seed)
    if settings.epochs and dataset is None:
        raise StudioError("Fine-tuning needs data: pass --data (e.g. digits, sample, imagefolder:PATH).")
    if settings.epochs and not settings.distill and not dataset.labeled:
        raise StudioError(f"{dataset.name} has no labels: fine-tune with distillation (--distill) instead.")
    stage, steps_done = "compress", 0
    try:
        batches = calibration = None
        if dataset is not None:
            batches = [(a, k) for a, k, _ in dataset.batches("val", 32)][:FIDELITY_BATCHES]
            calibration = [(a, k) for a, k, _ in dataset.batches("train", 32)][:FIDELITY_BATCHES]
        result: CompressionResult | None = None
        for event in compress(loaded, plan, cancel, batches=batches, calibration=calibration):
            if isinstance(event, Finished):
                result = event.result
            else:
                yield event
        assert result is not None
        report = dict(result.report)
        yield Metric(0, "size/original_bytes", report["before"]["bytes"])
        yield Metric(0, "size/bytes", report["after"]["bytes"])
        student = result.compressed
        history: list[dict[str, Any]] = []
        if dataset is not None:
            stage = "evaluate"
            yield StageStarted("evaluate", f"original and compressed on {dataset.name} ({len(dataset.val_idx)} samples)")
            reference = yield from _outputs(loaded.module, dataset, cancel, "original")
            before = metrics_from(reference, dataset, reference=reference)
            if before.accuracy is not None:
                yield Metric(0, "original/accuracy", float(before.accuracy))
            after = metrics_from((yield from _outputs(student, dataset, cancel, "compressed")), dataset,
                                 reference=reference)
            for point in _metric_points(0, after):
                history.append(point.__dict__)
                yield point
            if settings.epochs:
                stage = "finetune"
                student = copy.deepcopy(student)  # untouched layers are shared with the original until now
                for event in _finetune(loaded.module, student, result, dataset, settings, reference, cancel):
                    if isinstance(event, Metric):
                        history.append(event.__dict__)
                        steps_done = event.step
                    yield event
                after = metrics_from((yield from _outputs(student, dataset, cancel, "fine-tuned")), dataset,
                                     reference=reference)
                report["after"] = figures(student, loaded.input_spec).to_dict()
                report["fidelity"] = fidelity(loaded.module, student, batches or []).to_dict()
            report["before"] = {**report["before"], **_scores(before)}
            report["after"] = {**report["after"], **_scores(after)}
            report["fidelity"] = {**report["fidelity"], "kl": after.kl}  # KL(original ‖ final), validation split
            example = batch_one(dataset)
        else:
            example = loaded.example_inputs()
        stage = "latency"
        yield StageStarted("latency", "median of batch-1 forward passes")
        report["before"]["latency_ms"] = latency_ms(loaded.module, example)
        report["after"]["latency_ms"] = latency_ms(student, example)
        report.update(history=history, data=dataset.name if dataset else None,
                      settings={"finetune": settings.to_dict(), "device": str(pick_device())})
        yield Finished(RunResult(result, student.eval(), report))
    except Cancelled:
        yield RunCancelled(stage, f"cancelled during {stage}" + (f" after {steps_done} fine-tuning steps" if steps_done else "")
                           + "; the original model is unchanged")


def _outputs(model: nn.Module, dataset: Dataset, cancel: CancelToken, label: str,
             device: torch.device | None = None) -> Iterator[object]:
    """The model's validation outputs, with progress per batch and a cancel check between
    batches (evaluating a transformer on CPU takes minutes); returns the outputs."""
    total, outputs = dataset.steps("val", EVAL_BATCH), []
    for step, output in enumerate(iter_predict(model, dataset, "val", EVAL_BATCH, device), 1):
        outputs.append(output)
        cancel.raise_if_cancelled()
        yield Progress(step, total, f"evaluating the {label} model")
    return outputs


def _scores(metrics: Metrics) -> dict[str, float]:
    return {k: v for k, v in metrics.to_dict().items() if k in ("accuracy", "loss")}


def _metric_points(step: int, metrics: Metrics) -> list[Metric]:
    return [Metric(step, f"val/{k}", float(v)) for k, v in metrics.to_dict().items() if k != "samples"]


def _pruning_masks(student: nn.Module, result: CompressionResult) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Zeros made by unstructured/2:4 pruning must stay zero while fine-tuning."""
    masks = []
    for change in result.changes:
        if change.technique == "prune" and not change.detail.startswith("structured"):
            weight = student.get_submodule(change.name).weight
            masks.append((weight, (weight != 0).to(weight.dtype)))
    return masks


def _finetune(teacher: nn.Module, student: nn.Module, result: CompressionResult, dataset: Dataset,
              settings: FinetuneSettings, reference: list[torch.Tensor], cancel: CancelToken) -> Iterator[object]:
    device = pick_device()
    if device.type != "cpu":
        teacher = copy.deepcopy(teacher)  # moving the original to the GPU would modify it
    teacher = teacher.to(device).eval()
    student = student.to(device)
    masks = _pruning_masks(student, result)
    optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad], lr=settings.lr)
    per_epoch = dataset.steps("train", settings.batch_size)
    total = settings.epochs * per_epoch
    if settings.max_steps:
        total = min(total, settings.max_steps)
    yield StageStarted("finetune", f"{settings.epochs} epoch(s), {total} steps on {device.type}"
                       + (", distillation" if settings.distill else ""))
    student_hidden = HiddenCapture(settings.hidden).attach(student) if settings.hidden else None
    teacher_hidden = HiddenCapture(settings.hidden).attach(teacher) if settings.hidden else None
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else _null()
    step, start = 0, time.perf_counter()
    try:
        for epoch in range(settings.epochs):
            student.train()
            for batch in dataset.batches("train", settings.batch_size, shuffle=True, seed=settings.seed + epoch):
                if step >= total:
                    break
                cancel.raise_if_cancelled()
                args, kwargs, labels = _to(batch, device)
                with autocast:
                    with torch.no_grad():
                        t_out = primary_output(teacher(*args, **kwargs)).float()
                    s_out = primary_output(student(*args, **kwargs)).float()
                    if settings.distill:
                        loss = distillation_loss(s_out, t_out, labels, settings.alpha, settings.temperature)
                    else:
                        loss = nn.functional.cross_entropy(s_out, labels)
                    if student_hidden is not None:
                        extra = hidden_mse(student_hidden.outputs, teacher_hidden.outputs)
                        if extra is not None:
                            loss = loss + settings.hidden_weight * extra
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    for weight, mask in masks:
                        weight.mul_(mask)
                step += 1
                yield Metric(step, "train/loss", float(loss.detach()))
                yield Progress(step, total, f"epoch {epoch + 1}/{settings.epochs}, "
                                            f"{(time.perf_counter() - start) / step:.3f} s/step")
                if step % settings.eval_interval == 0 or step == total:
                    cancel.raise_if_cancelled()
                    outputs = yield from _outputs(student, dataset, cancel, "validation", device)
                    metrics = metrics_from(outputs, dataset, reference=reference)
                    student.train()
                    yield from _metric_points(step, metrics)
    finally:
        for capture in (student_hidden, teacher_hidden):
            if capture is not None:
                capture.detach()
        student.to("cpu").eval()


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
