"""The window's process backend: a job that carries a plain-data `spec` runs in the shared
child process (studio.core.pipelines.jobs), and the QThread worker only relays its events.

The window's GUI thread then shares the GIL with nothing heavier than unpickling events, and a
native crash in a converter, a runtime or the user's model code ends the child, not the window.
`STUDIO_IN_PROCESS=1` (or `ProcessWorker.enabled = False`) runs every job in-process as before.
The helpers build each job's spec from what the controllers have; they return None where the
child could not reopen the model (a result kept from an in-process run), and that job then
runs in-process."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from studio.core.model.loaders import LoadRequest
from studio.gui.qt_worker import Job, PipelineWorker

if TYPE_CHECKING:
    from pathlib import Path

    from studio.core.model.loaded_model import LoadedModel
    from studio.core.pipelines.jobs import ExportJob, LrJob, RunJob, SweepJob
    from studio.gui.qt_open_controller import CurrentModel


class ProcessWorker(PipelineWorker):
    """`PipelineWorker` whose generator, for a job with a spec, is the child's event stream."""

    enabled: ClassVar[bool] = os.environ.get("STUDIO_IN_PROCESS", "").strip() in ("", "0")

    def __init__(self, job: Job) -> None:
        spec = job.spec
        if ProcessWorker.enabled and hasattr(spec, "portable"):  # one of core.pipelines.jobs' specs
            from studio.core.pipelines.jobs import shared_runner

            runner = shared_runner()
            job = replace(job, factory=lambda token: runner.events(spec, token))
        super().__init__(job)


def warm_up() -> None:
    """Start the worker process (it imports torch while the user reads the tree)."""
    if ProcessWorker.enabled:
        from studio.core.pipelines.jobs import shared_runner

        shared_runner().warm_up()


def child_request(current: CurrentModel) -> LoadRequest | None:
    """How the child opens the current model: its request with the window's input spec, or the
    compressed folder a kept child result lives in. The window has already opened this source,
    so the trust the user gave for it holds for the child too."""
    loaded = current.loaded
    if loaded is None:
        return None
    folder = loaded.extras.get("folder")
    if folder:
        return LoadRequest(str(folder), trust=True, input_spec=loaded.input_spec)
    if current.in_memory or current.request is None:
        return None
    return replace(current.request, input_spec=loaded.input_spec)


def run_spec(current: CurrentModel, plan: Any, settings: dict[str, Any]) -> RunJob | None:
    from studio.core.pipelines.jobs import RunJob

    request = child_request(current)
    return None if request is None else RunJob(request, plan.to_dict(), settings.get("data") or None,
                                               dict(settings.get("finetune") or {}))


def lr_spec(current: CurrentModel, plan: Any, settings: dict[str, Any], steps: int) -> LrJob | None:
    from studio.core.pipelines.jobs import LrJob

    request = child_request(current)
    return None if request is None else LrJob(request, plan.to_dict() if plan is not None else None,
                                              settings["data"], dict(settings.get("finetune") or {}), steps)


def export_spec(current: CurrentModel, export: Any, data: str | None, baseline: Any) -> ExportJob | None:
    """`baseline` (the uncompressed module of a kept model) must be reopenable too."""
    from studio.core.pipelines.jobs import ExportJob

    request = child_request(current)
    baseline_request = current.loaded.extras.get("baseline_request") if current.loaded is not None else None
    if request is None or (baseline is not None and baseline_request is None):
        return None
    return ExportJob(request, export, data, baseline=baseline_request)


def sweep_spec(current: CurrentModel, spec: Any, data: str | None, cache: Path | None) -> SweepJob | None:
    from studio.core.pipelines.jobs import SweepJob

    request = child_request(current)
    return None if request is None else SweepJob(request, spec, data or None, cache)


def kept_model(result: Any, original: LoadedModel, current: CurrentModel) -> tuple[Any, dict[str, Any]]:
    """The module to keep and the extras that let later child jobs reopen it: a child's result
    (`SavedRun`) is rebuilt on the window's original from its folder, here, only when kept."""
    if not hasattr(result, "folder"):
        return result.model, {"folder": None}
    baseline = original.extras.get("baseline_request") or child_request(current)
    return result.open(original).module, {"folder": str(result.folder), "baseline_request": baseline}


def save_result(result: Any, folder: str) -> Path:
    """Save a run's result as a compressed folder: a child's is copied, an in-process one written."""
    if hasattr(result, "save_to"):
        return result.save_to(folder)
    from studio.core.pipelines.compressed_dir import save_compressed

    return save_compressed(result, folder, force=False)
