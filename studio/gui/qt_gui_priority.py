"""Keeping the GUI thread first while a job runs on a worker thread.

Two CPython effects, both measured (benchmarks/bench_gui_run.py):

* The cyclic GC runs on whichever thread happens to allocate; when a worker collects a cycle
  holding Qt objects, Qt destroys them off the GUI thread and the process crashes. Like
  pyqtgraph's `GarbageCollector`, automatic collection is turned off and young generations
  are collected on a GUI-thread timer; unlike it, full (generation 2) collections wait
  until no job runs: one walks every object the models own and stalls the window for a few
  hundred milliseconds, right while live charts draw. What survives a full collection is then
  frozen (`gc.freeze`): with a model open the GUI process holds ~340 k objects (torch and the
  model) and a full collection took 300-370 ms; frozen, the next ones walk only what is new (a
  few ms), so the first collection after a job (its end) no longer stalls. A new model thaws
  them (`thaw`), so the old model's cycles are collected once: at the first idle tick, not when
  the counts say (at idle they barely move, so that was often the end of the first job).
* PySide releases the GIL around C++ calls, so a paint re-acquires it hundreds of times;
  against a Python-busy worker each re-acquire waits up to the switch interval (5 ms), and
  one chart repaint took 67 ms instead of 6. While a job runs the interval is 1 ms.
"""

from __future__ import annotations

import gc
import sys

from PySide6.QtCore import QObject, QTimer

INTERVAL_MS = 50
JOB_SWITCH_INTERVAL_S = 0.001


class GuiPriority(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.jobs = 0  # running jobs; full collections wait until this is 0
        self.threshold = gc.get_threshold()
        self.switch_interval = sys.getswitchinterval()
        self.full_pending = True  # a full collection (then freeze) at the first idle tick: start-up's objects
        gc.disable()
        self.timer = QTimer(self)
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self.collect)
        self.timer.start()

    def collect(self) -> None:
        if self.full_pending and self.jobs == 0:
            self.full_pending = False
            gc.collect()
            gc.freeze()
            return
        count0, count1, count2 = gc.get_count()
        limit0, limit1, limit2 = self.threshold
        if count0 <= limit0:
            return
        generation = 0
        if count1 > limit1:
            generation = 1
            if count2 > limit2 and self.jobs == 0:
                generation = 2
        gc.collect(generation)
        if generation == 2:
            gc.freeze()  # the survivors are old: the next full collection walks only newer objects

    def thaw(self) -> None:
        """Let the next full collection walk every object again (a model was replaced: its
        cycles would otherwise stay frozen for good); done at the next idle tick."""
        gc.unfreeze()
        self.full_pending = True

    def job_started(self) -> None:
        self.jobs += 1
        sys.setswitchinterval(min(self.switch_interval, JOB_SWITCH_INTERVAL_S))

    def job_ended(self) -> None:
        self.jobs = max(0, self.jobs - 1)
        if self.jobs == 0:
            sys.setswitchinterval(self.switch_interval)


_priority: GuiPriority | None = None


def gui_priority() -> GuiPriority:
    """The process's policy, created on first use (from the GUI thread)."""
    global _priority
    if _priority is None:
        _priority = GuiPriority()
    return _priority
