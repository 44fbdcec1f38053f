"""The job worker imports the export stack (torch.onnx's exporter, onnx, onnxruntime) while it
waits for its first job, so the first export in a fresh worker does not pay for it; a job that
arrives meanwhile stops those imports and is served."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from studio.core.base.cancel import CancelToken
from studio.core.base.events import Finished
from studio.core.pipelines.jobs import ProcessJobRunner
from studio.core.pipelines.jobs.child import LATE_MODULES

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/maps")


@dataclass(frozen=True)
class ModulesJob:
    """A test-only job: which of `names` the worker has imported."""

    names: tuple[str, ...]
    kind = "modules"

    def events(self, cancel: CancelToken) -> Iterator[object]:
        yield Finished({name: name in sys.modules for name in self.names})

    def portable(self, event: object, scratch: Path) -> object:
        return event


def _loaded(pid: int, library: str) -> bool:
    return library in Path(f"/proc/{pid}/maps").read_text()


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _wait_idle(pid: int, deadline: float) -> None:
    """Until the worker spends no CPU for three seconds in a row: it sits in recv() with its
    imports done (a job sent earlier would stop the imports still to come; on a loaded machine
    one quiet second can be a wait for a core)."""
    before, quiet = _cpu_ticks(pid), 0
    while quiet < 3 and time.monotonic() < deadline:
        time.sleep(1.0)
        now = _cpu_ticks(pid)
        quiet = quiet + 1 if now == before else 0
        before = now


def test_an_idle_worker_imports_the_export_stack_before_its_first_job():
    runner = ProcessJobRunner()
    try:
        runner.wait_ready()
        pid = runner._worker.pid
        deadline = time.monotonic() + 300
        # onnxruntime maps its native library; no job is sent until then and the worker is idle
        while not _loaded(pid, "onnxruntime_pybind11_state") and time.monotonic() < deadline:
            time.sleep(0.2)
        _wait_idle(pid, deadline)  # onnxruntime.quantization comes after the native library
        (finished,) = list(runner.events(ModulesJob(LATE_MODULES)))
        assert finished.result == {name: True for name in LATE_MODULES}
    finally:
        runner.shutdown()


def test_a_job_sent_at_once_is_served_while_those_imports_wait():
    runner = ProcessJobRunner()
    try:
        runner.wait_ready()
        (finished,) = list(runner.events(ModulesJob(("torch", "studio.core.pipelines.run"))))
        assert finished.result == {"torch": True, "studio.core.pipelines.run": True}
    finally:
        runner.shutdown()
