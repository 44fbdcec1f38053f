"""What the GUI thread does when the window stalls: every top-level event dispatch is timed
(wall clock and the GUI thread's own CPU time) through `QApplication.notify`, and a sampler
thread records the GUI thread's Python stack every few milliseconds; each slow dispatch is then
reported with the stacks sampled while it ran.

CPU time tells a handler that works (its cost, whatever else runs on the machine) from one that
waits (for the CPU on a loaded machine, or for the GIL held by another thread). Used by
bench_gui_run.py --trace; the counts of handlers over 50 ms are the benchmark's load-independent
figures.
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from typing import Any

from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication

SLOW_MS = 50.0
SAMPLE_S = 0.003
MAX_FRAMES = 30


def _frames(frame: Any) -> tuple[str, ...]:
    out = []
    while frame is not None and len(out) < MAX_FRAMES:
        code = frame.f_code
        path = code.co_filename.rsplit("/", 3)
        out.append(f"{'/'.join(path[-3:])}:{frame.f_lineno}:{code.co_name}")
        frame = frame.f_back
    return tuple(out)


class Sampler(threading.Thread):
    """Samples the main thread's Python stack (innermost frame first) every SAMPLE_S."""

    def __init__(self, thread_id: int) -> None:
        super().__init__(name="gui-stack-sampler", daemon=True)
        self.thread_id = thread_id
        self.samples: list[tuple[float, tuple[str, ...]]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(SAMPLE_S):
            frame = sys._current_frames().get(self.thread_id)
            if frame is not None:
                self.samples.append((time.perf_counter(), _frames(frame)))


class TracingApplication(QApplication):
    """A QApplication whose top-level dispatches are timed while `recording`."""

    def __init__(self, argv: list[str]) -> None:
        super().__init__(argv)
        self.recording = False
        self.depth = 0
        self.calls: list[tuple[float, float, float, str]] = []  # (start, wall ms, cpu ms, what)

    def notify(self, receiver: Any, event: Any) -> bool:  # noqa: N802 (Qt's name)
        if not self.recording or self.depth:
            self.depth += 1
            try:
                return super().notify(receiver, event)
            finally:
                self.depth -= 1
        self.depth = 1
        start, cpu = time.perf_counter(), time.thread_time()
        try:
            return super().notify(receiver, event)
        finally:
            self.depth = 0
            wall_ms = 1000 * (time.perf_counter() - start)
            if wall_ms >= 5.0:
                cpu_ms = 1000 * (time.thread_time() - cpu)
                self.calls.append((start, wall_ms, cpu_ms, _describe(receiver, event)))


def _describe(receiver: Any, event: Any) -> str:
    try:
        kind = QEvent.Type(event.type()).name
    except Exception:  # noqa: BLE001 - a type Qt's enum does not name
        kind = str(int(event.type()))
    try:
        name = receiver.objectName() if hasattr(receiver, "objectName") else ""
    except RuntimeError:  # deleted while its event was handled
        name = "deleted"
    return f"{type(receiver).__name__}{'#' + name if name else ''} {kind}"


class Trace:
    """Start/stop around one job; `summary()` is plain data for the benchmark's JSON."""

    def __init__(self, app: Any, sample: bool) -> None:
        self.app = app if isinstance(app, TracingApplication) else None
        self.sample = sample
        self.sampler: Sampler | None = None

    def start(self) -> None:
        if self.app is None:
            return
        self.app.calls.clear()
        self.began = time.perf_counter()
        if self.sample:
            self.sampler = Sampler(threading.main_thread().ident or 0)
            self.sampler.start()
        self.app.recording = True

    def stop(self) -> dict[str, Any]:
        if self.app is None:
            return {}
        self.app.recording = False
        samples: list[tuple[float, tuple[str, ...]]] = []
        if self.sampler is not None:
            self.sampler.stop.set()
            self.sampler.join()
            samples, self.sampler = self.sampler.samples, None
        return self.summary(self.app.calls, samples, self.began)

    @staticmethod
    def summary(calls: list[tuple[float, float, float, str]], samples: list[tuple[float, tuple[str, ...]]],
                began: float = 0.0) -> dict[str, Any]:
        slow = [c for c in calls if c[1] >= SLOW_MS]
        out: dict[str, Any] = {
            "handlers_over_50ms_wall": len(slow),
            "handlers_over_50ms_cpu": sum(1 for c in calls if c[2] >= SLOW_MS),
            "handler_cpu_ms_max": round(max((c[2] for c in calls), default=0.0), 1),
            "handler_cpu_ms_total_over_5ms": round(sum(c[2] for c in calls), 1),
        }

        def row(call: tuple[float, float, float, str]) -> dict[str, Any]:
            start, wall, cpu, what = call
            found: dict[str, Any] = {"what": what, "at_s": round(start - began, 2), "wall_ms": round(wall, 1),
                                     "cpu_ms": round(cpu, 1)}
            inside = [s for t, s in samples if start <= t <= start + wall / 1000]
            if inside:
                tops: collections.Counter[str] = collections.Counter()
                for stack in inside:
                    own = [f for f in stack if "studio/" in f or "pyqtgraph/" in f]
                    tops[" < ".join((own or list(stack))[:4])] += 1
                found.update(samples=len(inside), stacks=tops.most_common(4))
            return found

        out["slow"] = [row(c) for c in sorted(slow, key=lambda c: -c[1])[:8]]
        out["heaviest_cpu"] = [row(c) for c in sorted(calls, key=lambda c: -c[2])[:10]]
        return out
