"""What a job is, as our own picklable data: the model source (a LoadRequest), the recipe as a
dict, settings dataclasses, a data spec, output paths. A child process rebuilds everything from
these (it opens the model itself), so no user object ever crosses a process boundary; the same
specs also run in-process (`job.events(cancel)`), through the same pipeline generators."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from studio.core.base.cancel import CancelToken
from studio.core.base.events import Finished, StageStarted
from studio.core.model.loaders import LoadRequest

if TYPE_CHECKING:
    from studio.core.pipelines.export.request import ExportRequest
    from studio.core.pipelines.sensitivity.spec import SweepSpec

OPEN_STAGE = "open"  # the stage a child is in while it opens the model and the data


def _open(request: LoadRequest, data: str | None, cancel: CancelToken) -> Iterator[object]:
    """Open the model and the data in this process; returns (loaded, dataset)."""
    from studio.core.pipelines.opening import load_model

    yield StageStarted(OPEN_STAGE, request.source)
    loaded = load_model(request)
    cancel.raise_if_cancelled()
    dataset = None
    if data:
        from studio.core.data.sources import open_dataset

        dataset = open_dataset(data, loaded)
        cancel.raise_if_cancelled()
    return loaded, dataset


@dataclass(frozen=True)
class RunJob:
    """Compress, evaluate, fine-tune (studio.core.pipelines.run)."""

    request: LoadRequest
    plan: dict[str, Any]
    data: str | None = None
    finetune: dict[str, Any] = field(default_factory=dict)
    kind = "run"

    def events(self, cancel: CancelToken) -> Iterator[object]:
        from studio.core.pipelines.finetune import FinetuneSettings
        from studio.core.pipelines.run import run
        from studio.core.plan import CompressionPlan

        loaded, dataset = yield from _open(self.request, self.data, cancel)
        # the model was opened here, for this job alone (the window keeps its own): compressed in place
        yield from run(loaded, CompressionPlan.from_dict(self.plan), dataset,
                       FinetuneSettings.from_dict(self.finetune or None), cancel, owned=True)

    def portable(self, event: object, scratch: Path) -> object:
        """A RunResult holds torch modules: the compressed model goes to a compressed folder."""
        if not isinstance(event, Finished):
            return event
        from studio.core.pipelines.compressed_dir import save_compressed
        from studio.core.pipelines.jobs.results import SavedRun

        result = event.result
        folder = save_compressed(result, scratch / "compressed")
        return Finished(SavedRun(folder, result.report, tuple(result.compression.changes), self.request))


@dataclass(frozen=True)
class SweepJob:
    """A layer-sensitivity sweep (studio.core.pipelines.sensitivity)."""

    request: LoadRequest
    spec: SweepSpec
    data: str | None = None
    cache_dir: Path | None = None
    kind = "sweep"

    def events(self, cancel: CancelToken) -> Iterator[object]:
        from studio.core.pipelines.sensitivity import sweep

        loaded, dataset = yield from _open(self.request, self.data, cancel)
        yield from sweep(loaded, dataset, self.spec, cancel, cache_dir=self.cache_dir)

    def portable(self, event: object, scratch: Path) -> object:
        return event  # SensitivityResult and its events are plain data


@dataclass(frozen=True)
class ExportJob:
    """An ONNX/TFLite export with verification (studio.core.pipelines.export); `baseline` is the
    uncompressed model PyTorch is timed with, when the model is a kept compressed one."""

    request: LoadRequest
    export: ExportRequest
    data: str | None = None
    baseline: LoadRequest | None = None
    kind = "export"

    def events(self, cancel: CancelToken) -> Iterator[object]:
        from studio.core.pipelines.export import export
        from studio.core.pipelines.opening import load_model

        loaded, dataset = yield from _open(self.request, self.data, cancel)
        baseline = load_model(self.baseline).module if self.baseline is not None else None
        yield from export(loaded, self.export, dataset, baseline=baseline, cancel=cancel)

    def portable(self, event: object, scratch: Path) -> object:
        return event  # ExportResult: paths and a report dict


@dataclass(frozen=True)
class LrJob:
    """The learning-rate range test on the compressed plan (studio.core.pipelines.lr_finder)."""

    request: LoadRequest
    plan: dict[str, Any] | None
    data: str
    finetune: dict[str, Any] = field(default_factory=dict)
    steps: int = 100
    kind = "find-lr"

    def events(self, cancel: CancelToken) -> Iterator[object]:
        from studio.core.pipelines.finetune import FinetuneSettings
        from studio.core.pipelines.lr_finder import find_lr
        from studio.core.plan import CompressionPlan

        loaded, dataset = yield from _open(self.request, self.data, cancel)
        plan = CompressionPlan.from_dict(self.plan) if self.plan is not None else None
        yield from find_lr(loaded, plan, dataset, FinetuneSettings.from_dict(self.finetune or None), cancel,
                           steps=self.steps)

    def portable(self, event: object, scratch: Path) -> object:
        return event  # LrFinderResult: tuples of floats

