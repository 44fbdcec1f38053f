"""The sweep as a cancellable generator: plan the table, reuse cached cells, measure the rest
(in-process, local processes or Ray), stream each cell, finish with a SensitivityResult."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from studio.core.base.cancel import CancelToken, Cancelled
from studio.core.base.errors import StudioError
from studio.core.base.events import Finished, RunCancelled, StageStarted
from studio.core.pipelines.sensitivity.cache import CellStore, sweep_key
from studio.core.pipelines.sensitivity.events import CellDone, SweepPlanned
from studio.core.pipelines.sensitivity.result import INVERSE_SETTING, SensitivityCell, SensitivityResult
from studio.core.pipelines.sensitivity.settings import compressible_layers, sweep_settings
from studio.core.pipelines.sensitivity.spec import SweepSpec

if TYPE_CHECKING:
    from studio.core.data.dataset import Dataset
    from studio.core.model.loaded_model import LoadedModel

INVERSE_LABELS = ("int8 w+a", "int8")


def sweep(loaded: LoadedModel, dataset: Dataset | None, spec: SweepSpec, cancel: CancelToken | None = None,
          cache_dir: Path | None = None) -> Iterator[object]:
    from studio.core.data.sources import open_dataset
    from studio.core.pipelines.sensitivity.engine import sample_batches

    cancel = cancel or CancelToken()
    from studio.core.model.loaders import require_weights

    require_weights(loaded, "swept for sensitivity")
    if not loaded.eager:
        raise StudioError(f"{loaded.name} is TorchScript; a sensitivity sweep changes layers of an eager PyTorch model.")
    if spec.samples < 1:
        raise StudioError(f"--samples must be at least 1 (got {spec.samples}).")
    if spec.workers < 0:
        raise StudioError(f"--workers must be 0 (in-process) or more (got {spec.workers}).")
    settings = sweep_settings(spec.techniques, spec.settings)
    layers = compressible_layers(loaded.module, settings, spec.layers)
    dataset = dataset if dataset is not None else open_dataset("random", loaded)
    batches, labels = sample_batches(dataset, spec.samples)
    inverse_setting = next((s for label in INVERSE_LABELS for s in settings if s.label == label), None)
    inverse_setting = inverse_setting if spec.inverse else None
    samples = sum(len(args[0] if args else next(iter(kwargs.values()))) for args, kwargs in batches)
    plan = {"settings": [s.to_dict() for s in settings], "layers": list(layers), "samples": samples,
            "inverse": inverse_setting.label if inverse_setting else None}
    store = CellStore(cache_dir, sweep_key(loaded.module, batches, labels, plan))
    total = len(layers) * len(settings) + (len(layers) if inverse_setting else 0)

    finished = store.finished()
    if finished is not None:  # reopen: the whole table from disk, nothing measured
        yield SweepPlanned(finished.settings, finished.layers, finished.baseline, finished.metric)
        for i, cell in enumerate(finished.cells + finished.inverse):
            yield CellDone(cell, i + 1, total)
        yield Finished(finished)
        return

    yield StageStarted("sensitivity", f"{len(layers)} layers × {len(settings)} settings on {samples} samples")
    from studio.core.model.inspection import inspect_model
    from studio.core.pipelines.sensitivity.engine import CellEngine

    engine = CellEngine(loaded, batches, labels, inspect_model(loaded.module, loaded.input_spec), spec.fast)
    cells, inverse, header = store.partial()
    if not header:
        store.append("header", {"baseline": engine.baseline, "metric": engine.scorer.metric})
    yield SweepPlanned(settings, layers, engine.baseline, engine.scorer.metric)
    done = 0
    try:
        for cell in list(cells.values()) + list(inverse.values()):
            done += 1
            yield CellDone(cell, done, total)
        tasks = [(name, tuple(s for s in settings if (name, s.label) not in cells)) for name in layers]
        tasks = [t for t in tasks if t[1]]
        for cell in _measure(engine, loaded, batches, labels, tasks, spec, cancel):
            cells[(cell.layer, cell.setting)] = cell
            store.append("cell", cell)
            done += 1
            yield CellDone(cell, done, total)
        all_int8 = header.get("all_int8", math.nan)
        if inverse_setting is not None and len(inverse) < len(layers):
            yield StageStarted("sensitivity", f"inverse view: everything {inverse_setting.label} but one layer")
            todo = tuple(name for name in layers if name not in inverse)
            for cell in engine.inverse_cells(todo, inverse_setting, INVERSE_SETTING, cancel.raise_if_cancelled):
                if math.isnan(all_int8) and not math.isnan(engine.all_quantized):
                    all_int8 = engine.all_quantized
                    store.append("header", {"all_int8": all_int8})
                inverse[cell.layer] = cell
                store.append("inverse", cell)
                done += 1
                yield CellDone(cell, done, total)
            for name in todo:  # layers the setting does not apply to
                if name not in inverse:
                    inverse[name] = SensitivityCell(name, INVERSE_SETTING, math.nan, math.nan, 0, 0, 0,
                                                    f"{inverse_setting.label} does not apply to this layer")
                    done += 1
                    yield CellDone(inverse[name], done, total)
    except Cancelled:
        yield RunCancelled("sensitivity", f"{done} of {total} cells measured; run again to resume")
        return
    finally:
        engine.close()
    result = SensitivityResult(
        model=loaded.name, metric=engine.scorer.metric, baseline=engine.baseline, samples=samples,
        settings=settings, layers=layers,
        cells=tuple(cells[(n, s.label)] for n in layers for s in settings),
        inverse=tuple(inverse[n] for n in layers if n in inverse), all_int8=all_int8)
    store.finish(result)
    yield Finished(result)


def _measure(engine, loaded, batches, labels, tasks, spec: SweepSpec, cancel: CancelToken):
    from studio.core.pipelines.sensitivity import executors

    if spec.ray:
        payload = executors._payload(loaded, batches, labels, spec.fast)
        yield from executors.run_ray(payload, tasks, spec.ray, spec.workers or 2, lambda: cancel.cancelled)
    elif spec.workers > 0:
        payload = executors._payload(loaded, batches, labels, spec.fast)
        yield from executors.run_processes(payload, tasks, spec.workers, lambda: cancel.cancelled)
    else:
        for name, settings in tasks:
            yield from engine.layer_cells(name, settings, cancel.raise_if_cancelled)
    cancel.raise_if_cancelled()
