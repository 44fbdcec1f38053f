"""Validate a plan, apply it to a copy of the model and measure before/after, as a
cancellable generator of events shared by the CLI, the tests and the window.

A caller that owns the model and needs nothing of the original afterwards (the CLI: its process
opened the model and exits after saving) passes `owned=True`: the original is measured first
(its tree, bytes and its outputs on the fidelity batches, which are small next to the weights)
and then compressed in place, layer by layer, so original and copy are never held together and
each replaced layer's float weights are freed as it goes. Without it the original is never
changed (the window's loaded model, tests, sensitivity sweeps)."""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass, replace
from typing import Iterable, Iterator

import torch
from torch import nn

from studio.core.pipelines.apply import apply_assignments_, editable_copy
from studio.core.pipelines.in_place import FilePages, trim_heap
from studio.core.base.cancel import CancelToken
from studio.core.data.examples import Batch, example_batches
from studio.core.base.errors import StudioError
from studio.core.base.events import Finished, LayerDone, Progress, StageStarted, Warning
from studio.core.model.inspection import inspect_model
from studio.core.model.loaded_model import LoadedModel
from studio.core.model.loaders import require_weights
from studio.core.model.measure import fidelity, fidelity_to, figures, reference_outputs, stored_bytes
from studio.core.model.model_tree import ModelTree
from studio.core.plan import CompressionPlan, PlanError
from studio.core.plan.resolve import Assignments, resolve_plan
from studio.core.report.compression import (CompressionReport, LayerRow, ModelFigures, OutputFidelity, PatternSkip,
                                            ratios)
from studio.core.techniques.base import ApplyContext, LayerChange
from studio.core.techniques.int4_packed import build_kernels

TORCHSCRIPT_REFUSAL = ("This is a TorchScript model: rank reduction, pruning and quantization replace modules and "
                       "need the eager model. Open the model's code with its weights (file.py:Net --weights W).")


@dataclass(frozen=True)
class CompressionResult:
    """`original.module` is `compressed` itself when it was compressed in place (`owned`)."""

    original: LoadedModel
    compressed: nn.Module
    plan: CompressionPlan
    changes: tuple[LayerChange, ...]
    before_tree: ModelTree
    after_tree: ModelTree
    report: CompressionReport


MEASURE_STEPS = 5


def validate(loaded: LoadedModel, plan: CompressionPlan, warnings: list[str] | None = None,
             skips: list[PatternSkip] | None = None) -> Assignments:
    """Every problem of the plan on this model, before anything runs; `warnings` receives the
    layers pattern rules skip (those their technique cannot take), one line per rule and
    technique, and `skips` each of those layers (for the report)."""
    if not loaded.eager and plan.rules:
        raise StudioError(TORCHSCRIPT_REFUSAL)
    resolution = resolve_plan(plan, loaded.module, loaded.example_inputs())
    if resolution.problems:
        raise PlanError(list(resolution.problems))
    if warnings is not None:
        warnings += resolution.warnings
    if skips is not None:
        skips += [PatternSkip(layer, key, reason) for key, layers in resolution.skipped.items()
                  for layer, reason in layers.items()]
    return resolution.assignments


def compress(loaded: LoadedModel, plan: CompressionPlan, cancel: CancelToken | None = None,
             batches: list[Batch] | None = None, calibration: list[Batch] | None = None,
             tree: ModelTree | None = None, owned: bool = False,
             references: list[torch.Tensor] | None = None) -> Iterator[object]:
    """`tree`: the original's tree when the caller already built it (the window has), so the
    original is not inspected twice. `owned`: compress `loaded.module` itself (see the module
    docstring); the caller must not need the original afterwards. `references` (with `owned`):
    the original's outputs on `batches` when the caller already holds them (`kept_outputs_for`),
    so they are neither computed nor held a second time."""
    cancel = cancel or CancelToken()
    yield StageStarted("validate", f"{len(plan.rules)} rule(s)")
    require_weights(loaded, "compressed")  # the what-if projection works without weights, compressing does not
    skipped: list[str] = []
    pattern_skips: list[PatternSkip] = []
    assignments = validate(loaded, plan, skipped, pattern_skips)
    for message in skipped:
        yield Warning(message)
    total = sum(len(layers) for layers in assignments.values())
    spec = loaded.input_spec
    fidelity_batches = batches if batches is not None else example_batches(loaded)
    measure_seconds = 0.0
    if owned:  # what the measure stage needs of the original, before it changes
        yield StageStarted("measure", "the original, before compressing it in place")
        start = time.perf_counter()
        trim_heap()  # the caller's freed blocks (e.g. the original's timing: 34 MiB on a 135 M LM) before more is held
        before_tree = tree if tree is not None and tree.input_spec == str(spec) else inspect_model(loaded.module, spec)
        before = figures(loaded.module, spec, before_tree)
        trim_heap()
        if references is None or len(references) != len(fidelity_batches):
            references = reference_outputs(loaded.module, fidelity_batches)
        trim_heap()
        measure_seconds = time.perf_counter() - start
        cancel.raise_if_cancelled()
    yield StageStarted("apply", f"{total} layer assignment(s)" + (", in place" if owned else ""))
    start = time.perf_counter()
    model = loaded.module if owned else editable_copy(loaded.module, assignments)
    calibration_batches = calibration if calibration is not None else example_batches(loaded, split="train")
    context = ApplyContext(example_inputs=loaded.example_inputs(), calibration=lambda: iter(calibration_batches),
                           cancel=cancel)
    pages = FilePages(model, [model.get_submodule(n) for layers in assignments.values() for n in layers]) \
        if owned else None  # a file-mapped original's replaced weights leave memory as they go
    changes = []
    for change in apply_assignments_(model, assignments, context):
        changes.append(change)
        if pages is not None:
            pages.release_freed()
        yield LayerDone(change)
        yield Progress(len(changes), max(total, len(changes)), change.name)
    if pages is not None:
        gc.collect()
        pages.close()
    build_kernels(model, trim_heap)  # here, not among the first forward's activations (see build_kernels)
    trim_heap()
    model.eval()
    apply_seconds = time.perf_counter() - start
    for message in context.warnings:
        yield Warning(message)
    cancel.raise_if_cancelled()
    yield StageStarted("measure", "params, bytes, FLOPs and output fidelity")
    start = time.perf_counter()
    yield Progress(0, MEASURE_STEPS, "inspecting the original")  # determinate: the window shows an ETA
    if not owned:
        before_tree = tree if tree is not None and tree.input_spec == str(spec) else inspect_model(loaded.module, spec)
    cancel.raise_if_cancelled()
    yield Progress(1, MEASURE_STEPS, "inspecting the compressed model")
    after_tree = inspect_model(model, spec)
    cancel.raise_if_cancelled()
    yield Progress(2, MEASURE_STEPS, "bytes of the original")
    if not owned:
        before = figures(loaded.module, spec, before_tree)
    cancel.raise_if_cancelled()
    yield Progress(3, MEASURE_STEPS, "bytes of the compressed model")
    after = figures(model, spec, after_tree)
    trim_heap()
    cancel.raise_if_cancelled()
    yield Progress(4, MEASURE_STEPS, "output fidelity")
    fid = fidelity_to(references, model, fidelity_batches) if owned else \
        fidelity(loaded.module, model, fidelity_batches)
    trim_heap()  # the forward's freed activations
    yield Progress(MEASURE_STEPS, MEASURE_STEPS, "measured")
    before_figures, after_figures = ModelFigures(**before.to_dict()), ModelFigures(**after.to_dict())
    report = CompressionReport(
        model=loaded.name, source=loaded.source, input_spec=str(spec), recipe=plan.to_dict(),
        before=before_figures, after=after_figures, ratios=ratios(before_figures, after_figures),
        fidelity=OutputFidelity(**fid.to_dict()),
        layers=tuple(_layer_row(c, before_tree, after_tree, model) for c in changes),
        warnings=tuple(context.warnings), pattern_skips=tuple(pattern_skips),
        timing={"apply_s": round(apply_seconds, 3),
                "measure_s": round(time.perf_counter() - start + measure_seconds, 3)})
    yield Finished(CompressionResult(loaded, model, plan, tuple(changes), before_tree, after_tree, report))


def kept_outputs_for(batches: list[Batch], kept: Iterable[tuple[Batch, torch.Tensor]]) -> list[torch.Tensor] | None:
    """The outputs in `kept` ((inputs, output) pairs, e.g. the original's validation outputs) of
    each of `batches`, or None unless every batch is one of them: the same input values and
    shapes, so the same forward, which gives the same output."""
    kept = list(kept)
    found = []
    for batch in batches:
        match = next((output for inputs, output in kept if _same_inputs(batch, inputs)), None)
        if match is None:
            return None
        found.append(match)
    return found


def _same_inputs(a: Batch, b: Batch) -> bool:
    (args_a, kwargs_a), (args_b, kwargs_b) = a, b
    if len(args_a) != len(args_b) or kwargs_a.keys() != kwargs_b.keys():
        return False
    for x, y in [*zip(args_a, args_b), *((kwargs_a[k], kwargs_b[k]) for k in kwargs_a)]:
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            same = isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape \
                and x.dtype == y.dtype and torch.equal(x.cpu(), y.cpu())
        else:
            same = type(x) is type(y) and x == y
        if not same:
            return False
    return True


def _layer_row(change: LayerChange, before: ModelTree, after: ModelTree, model: nn.Module) -> LayerRow:
    """`bytes_after` at the layer's real bit widths (int8/int4 codes + scales), as the report's totals."""
    row = LayerRow(change.name, change.technique, change.detail, change.params_before, change.params_after,
                   change.skipped)
    if change.name in before and change.name in after:
        row = replace(row, flops_before=before[change.name].flops, flops_after=after[change.name].flops,
                      bytes_before=before[change.name].bytes,
                      bytes_after=stored_bytes(model.get_submodule(change.name)))
    return row
