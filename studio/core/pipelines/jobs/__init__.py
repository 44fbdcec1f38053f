"""Jobs as data, run in-process or in a child process that streams their events back."""

from __future__ import annotations

from studio.core.pipelines.jobs.results import SavedRun
from studio.core.pipelines.jobs.runner import ProcessJobRunner, WorkerCrashed, shared_runner
from studio.core.pipelines.jobs.specs import ExportJob, LrJob, RunJob, SweepJob

__all__ = ["ExportJob", "LrJob", "ProcessJobRunner", "RunJob", "SavedRun", "SweepJob", "WorkerCrashed",
           "shared_runner"]
