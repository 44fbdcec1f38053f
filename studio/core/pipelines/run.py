"""A compression run: apply the plan, evaluate, optionally fine-tune the compressed model
(knowledge distillation from the original, keeping the best weights), evaluate again. A generator of events that
honours a cancel token between steps; the original model is never modified."""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Any, Iterator

import torch
from torch import nn

from studio.core.base.cancel import CancelToken, Cancelled
from studio.core.pipelines.compress import CompressionResult, compress, kept_outputs_for
from studio.core.data.dataset import Dataset
from studio.core.base.errors import StudioError
from studio.core.pipelines.bn_recalibration import batchnorms, recalibration_stage
from studio.core.pipelines.evaluate import EVAL_BATCH, batch_one, validation_metrics
from studio.core.base.events import Finished, Metric, RunCancelled, StageStarted
from studio.core.pipelines.finetune import FinetuneSettings, recalibrates_bn, refit_head
from studio.core.pipelines.finetune_loop import FinetuneOutcome, finetune, metric_points
from studio.core.pipelines.in_place import forward_times, latency_after, trim_heap
from studio.core.pipelines.head_refit import head_refit_stage
from studio.core.pipelines.latency import compare_latency
from studio.core.model.inspection import inspect_model
from studio.core.model.loaded_model import LoadedModel
from studio.core.model.measure import fidelity, figures
from studio.core.model.model_tree import ModelTree
from studio.core.plan import CompressionPlan
from studio.core.report.compression import (FinetuneSummary, HistoryPoint, ModelFigures, OutputFidelity, RunReport,
                                            SpeedComparison)

FIDELITY_BATCHES = 8
__all__ = ["EVAL_BATCH", "RunResult", "pick_device", "run", "spread_batches"]


@dataclass(frozen=True)
class RunResult:
    """`model` is the final (possibly fine-tuned) compressed model; `original`, `plan`,
    `compressed` and `report` are what saving a compressed folder needs."""

    compression: CompressionResult
    model: nn.Module
    report: RunReport

    @property
    def original(self) -> LoadedModel:
        return self.compression.original

    @property
    def plan(self) -> CompressionPlan:
        return self.compression.plan

    @property
    def compressed(self) -> nn.Module:
        return self.model


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def run(loaded: LoadedModel, plan: CompressionPlan, dataset: Dataset | None,
        settings: FinetuneSettings | None = None, cancel: CancelToken | None = None,
        tree: ModelTree | None = None, owned: bool = False) -> Iterator[object]:
    """`tree`: the original's tree when the caller already has it (passed on to `compress`).
    `owned`: the caller (the CLI) will not use the original afterwards, so it is evaluated and timed
    first and then compressed in place (`compress(owned=True)`: never original and copy at once);
    ignored when something after compressing needs the original (fine-tuning distils from it,
    BatchNorm re-estimation compares against it, re-fitting the head learns from its outputs)."""
    settings = settings or FinetuneSettings()
    cancel = cancel or CancelToken()
    problems = settings.problems()
    if problems:
        raise StudioError("settings.finetune: " + " ".join(problems))
    torch.manual_seed(settings.seed)
    if settings.epochs and dataset is None:
        raise StudioError("Fine-tuning needs data: pass --data (e.g. digits, sample, imagefolder:PATH).")
    if settings.epochs and not settings.distill and not dataset.labeled:
        raise StudioError(f"{dataset.name} has no labels: fine-tune with distillation (--distill) instead.")
    stage, steps_done = "compress", 0
    owned = owned and not settings.epochs and not (dataset is not None and (refit_head(settings, loaded.module) or (
        recalibrates_bn(settings, loaded.module) and batchnorms(loaded.module))))  # ("auto" resolved, not truthy)
    try:
        reference = before = original_ms = None
        if owned and (tree is None or tree.input_spec != str(loaded.input_spec)):
            # compress would inspect first (and is handed this tree); here the original runs before it:
            # a forward that fails on the input spec gets inspection's one clear sentence, not the
            # evaluation's or the timing's exception
            tree = inspect_model(loaded.module, loaded.input_spec)
        example = (batch_one(dataset) if dataset is not None else loaded.example_inputs()) if owned else None
        if owned and dataset is not None:  # the original's outputs and metrics, before it changes
            stage = "evaluate"
            yield StageStarted("evaluate", f"the original on {dataset.name} ({len(dataset.val_idx)} samples), "
                                           "before compressing it in place")
            before, reference = yield from validation_metrics(loaded.module, dataset, cancel, "original", EVAL_BATCH,
                                                              keep=True)  # (against itself: only transients)
            trim_heap()  # the forward's freed blocks, before the next stages hold more (see in_place)
        if owned:
            stage = "latency"
            yield StageStarted("latency", "batch-1 forward passes of the original, before compressing it in place")
            original_ms = forward_times(loaded.module, example)
            stage = "compress"
        batches = calibration = None
        if dataset is not None:
            batches = spread_batches(dataset, "val", 32, FIDELITY_BATCHES)
            calibration = [(a, k) for a, k, _ in dataset.batches("train", 32, pad="longest")][:FIDELITY_BATCHES]
        kept = None  # the fidelity batches' outputs, when the original's validation already holds them
        if owned and reference is not None and batches is not None:
            kept = kept_outputs_for(batches, zip(((a, k) for a, k, _ in dataset.batches("val", EVAL_BATCH,
                                                                                            pad="longest")), reference))
        result: CompressionResult | None = None
        for event in compress(loaded, plan, cancel, batches=batches, calibration=calibration, tree=tree,
                              owned=owned, references=kept):
            if isinstance(event, Finished):
                result = event.result
            else:
                yield event
        assert result is not None
        report = result.report
        yield Metric(0, "size/original_bytes", report.before.bytes)
        yield Metric(0, "size/bytes", report.after.bytes)
        student = result.compressed
        history: list[dict[str, Any]] = []
        outcome: FinetuneOutcome | None = None
        recalibration: dict[str, Any] | None = None  # BatchNorm re-estimation: its metrics, whether kept
        refit: dict[str, Any] | None = None  # the output layer re-fitted (head_refit): its metrics, whether kept
        if dataset is not None:
            stage = "evaluate"
            yield StageStarted("evaluate", f"original and compressed on {dataset.name} ({len(dataset.val_idx)} samples)")
            if reference is None:
                before, reference = yield from validation_metrics(loaded.module, dataset, cancel, "original",
                                                                  EVAL_BATCH, keep=True)
            if before.accuracy is not None:
                yield Metric(0, "original/accuracy", float(before.accuracy))
            after, _ = yield from validation_metrics(student, dataset, cancel, "compressed", EVAL_BATCH,
                                                     reference=reference)  # scored batch by batch, not kept
            if recalibrates_bn(settings, student) and result.changes and batchnorms(student) and not owned:
                # (in place, the original's "auto" decided: a plan that shrinks a CNN below 1 M parameters keeps it)
                pruned = after
                student, after, kept = yield from recalibration_stage(student, dataset, cancel, reference, after)
                recalibration = {"kept": kept, "before": pruned.to_dict(), "after": after.to_dict()}
            if result.changes and refit_head(settings, student):
                pruned = after
                student, after, kept, why = yield from head_refit_stage(student, loaded.module, dataset, settings,
                                                                        cancel, reference, after)
                refit = {"kept": kept, "before": pruned.to_dict(), "after": after.to_dict(), "why": why}
            for point in metric_points(0, after):
                history.append(point.__dict__)
                yield point
            if settings.epochs:
                stage = "finetune"
                student = copy.deepcopy(student)  # untouched layers are shared with the original until now
                device = pick_device()
                teacher = copy.deepcopy(loaded.module) if device.type != "cpu" else loaded.module  # never moved
                masks = _kept_masks(student, result)
                outcome = yield from _tracked(finetune(teacher.to(device).eval(), student, dataset, settings,
                                                       reference, after, masks, cancel, device), history)
                steps_done = outcome.steps
                after = outcome.best  # the validation metrics of the weights kept
            if outcome is not None or (recalibration or {}).get("kept") or (refit or {}).get("kept"):  # weights changed
                report = report.with_after(ModelFigures(**figures(student, loaded.input_spec).to_dict()),
                                           OutputFidelity(**fidelity(loaded.module, student, batches or []).to_dict()))
            report = replace(report, before=replace(report.before, accuracy=before.accuracy, loss=before.loss,
                                                    perplexity=before.perplexity),
                             after=replace(report.after, accuracy=after.accuracy, loss=after.loss,
                                           perplexity=after.perplexity),
                             fidelity=replace(report.fidelity, kl=after.kl))  # KL(original ‖ final), validation split
            example = batch_one(dataset)
        else:
            example = loaded.example_inputs()
        stage = "latency"
        yield StageStarted("latency", "batch-1 forward passes, original and compressed interleaved" if original_ms is None
                           else "batch-1 forward passes of the compressed model (the original was timed before)")
        timing = compare_latency(loaded.module, student, example) if original_ms is None else \
            latency_after(original_ms, student, example)
        report = RunReport.of(report, latency=SpeedComparison(**timing.to_dict()),
                           history=tuple(HistoryPoint(**point) for point in history),
                           data=dataset.name if dataset else None,
                           settings={"finetune": settings.to_dict(), "device": str(pick_device()),
                                     **({"bn_recalibration": recalibration} if recalibration else {}),
                                     **({"head_refit": refit} if refit else {})},
                           finetune=FinetuneSummary.from_dict(outcome.to_dict()) if outcome is not None else None)
        report = replace(report, before=replace(report.before, latency_ms=timing.before_ms),
                         after=replace(report.after, latency_ms=timing.after_ms))
        if getattr(student, "studio_layer_map", None):  # layer dropping: student layer → the teacher's it distils
            report = replace(report, settings={**report.settings, "layer_map": dict(student.studio_layer_map)})
        yield Finished(RunResult(result, student.eval(), report))
    except Cancelled:
        if stage == "finetune":
            steps_done = max([0] + [h["step"] for h in history if h["name"] == "train/loss"])
        yield RunCancelled(stage, f"cancelled during {stage}" + (f" after {steps_done} fine-tuning steps" if steps_done else "")
                           + ("; the original model is unchanged" if not owned else "; nothing was saved"))


def _tracked(events: Iterator[object], history: list[dict[str, Any]]) -> Iterator[object]:
    """Pass events on, recording metric points in the history; returns the generator's value."""
    while True:
        try:
            event = next(events)
        except StopIteration as stop:
            return stop.value
        if isinstance(event, Metric):
            history.append(event.__dict__)
        yield event


def spread_batches(dataset: Dataset, split: str, batch_size: int, count: int) -> list[tuple[Any, ...]]:
    """`count` batches from across the split (validation text is sorted by length: the first
    batches alone would be the shortest sentences), each cut to its longest sequence."""
    every = max(1, dataset.steps(split, batch_size) // count)
    picked = [(a, k) for i, (a, k, _) in enumerate(dataset.batches(split, batch_size, pad="longest")) if i % every == 0]
    return picked[:count]


def _kept_masks(student: nn.Module, result: CompressionResult) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """What each technique's changes keep fixed while fine-tuning (e.g. pruned zeros stay zero),
    found under the layers' names in the student (dropping layers renumbers those after them)."""
    from dataclasses import replace

    from studio.core.techniques import all_techniques

    techniques = all_techniques()
    masks = []
    for change in result.changes:
        name = _student_name(student, change.name)
        if change.technique in techniques and name is not None:
            masks += techniques[change.technique].fine_tune_masks(student, replace(change, name=name))
    return masks


def _student_name(student: nn.Module, name: str) -> str | None:
    """The student's name for an original layer, through the model's layer map (new block →
    original block, left by layer dropping); None when the layer's block was dropped."""
    mapping: dict[str, str] = getattr(student, "studio_layer_map", None) or {}
    back = {original: new for new, original in mapping.items()}
    for parent in {new.rsplit(".", 1)[0] for new in mapping}:
        if name.startswith(parent + "."):
            block = parent + "." + name[len(parent) + 1:].split(".", 1)[0]
            return back[block] + name[len(block):] if block in back else None
    return name
