"""What the GUI thread does when the window stalls. The benchmark's 10 ms probe records, for
each gap between two ticks, its wall time and the GUI thread's own CPU time in it; a sampler
thread (--trace) records the GUI thread's Python stack every few milliseconds, and each slow or
CPU-heavy gap is reported with the stacks sampled in it.

CPU time tells a stall the GUI thread worked through (its own cost, whatever else runs on the
machine) from one it waited through (for the CPU on a loaded machine, or for the GIL held by
another thread): the counts of gaps with over 50 ms of GUI-thread CPU are the benchmark's
load-independent figures. (Timing each dispatch by overriding QApplication.notify in Python was
tried first: PySide6 then handed some DeferredDelete receivers over as the wrong type and the
process crashed in paint events.)
"""

from __future__ import annotations

import collections
import os
import sys
import threading
import time
from typing import Any

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


def _stat_cpu(path: str) -> float | None:
    """utime + stime (fields 14 and 15 of a /proc stat file), in seconds."""
    try:
        with open(path) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds of each live thread of process `pid`, and under key 0 the whole process's
    (threads that have ended included). Linux /proc; {} elsewhere."""
    whole = _stat_cpu(f"/proc/{pid}/stat")
    if whole is None:
        return {}
    out = {0: whole}
    for tid in os.listdir(f"/proc/{pid}/task"):
        cpu = _stat_cpu(f"/proc/{pid}/task/{tid}/stat")
        if cpu is not None:
            out[int(tid)] = cpu
    return out


class JobCpu:
    """What the job's threads (every thread but the GUI thread, in the window's process and in the
    worker process) spent during one job: total CPU seconds, and how many threads did a tenth of
    it (a thread that ended during the job, like the child's per-job thread, counts as one).
    Wall time next to CPU time tells a job that waited (for a core, a lock) from one that worked;
    the thread count tells a job that ran its kernels on one thread from one that used two."""

    def __init__(self, pids: list[int], gui_tid: int) -> None:
        self.pids, self.gui_tid = pids, gui_tid
        self.before = {pid: thread_cpu(pid) for pid in pids}

    def stop(self) -> dict[str, float | int]:
        threads: list[float] = []
        total = 0.0
        for pid in self.pids:
            start, now = self.before.get(pid, {}), thread_cpu(pid)
            if not now:
                continue
            used = {tid: cpu - start.get(tid, 0.0) for tid, cpu in now.items()}
            whole = used.pop(0) - used.pop(self.gui_tid, 0.0)
            total += whole
            threads += [u for u in used.values()] + [max(0.0, whole - sum(used.values()))]  # + the ended ones
        return {"job_cpu_s": round(total, 2),
                "job_threads_over_10pct": sum(1 for u in threads if total and u >= 0.1 * total)}


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
            # Never hold a frame past the sample: a held frame keeps its locals alive, and a
            # paintEvent's QPainter that outlives the paint crashed the process (QBackingStore::
            # endPaint() called with active painter, then a segfault).
            del frame


class Trace:
    """Start/stop around one job; `tick()` from the probe; `stop()` returns plain data for JSON."""

    def __init__(self, sample: bool) -> None:
        self.sample = sample
        self.sampler: Sampler | None = None
        self.calls: list[tuple[float, float, float, str]] = []  # (start, wall ms, GUI-thread cpu ms, what)

    def start(self) -> None:
        self.calls = []
        self.began = self.last = time.perf_counter()
        self.last_cpu = time.thread_time()
        if self.sample:
            self.sampler = Sampler(threading.main_thread().ident or 0)
            self.sampler.start()

    def tick(self) -> None:
        """One probe tick (on the GUI thread): the gap since the previous one."""
        now, cpu = time.perf_counter(), time.thread_time()
        wall_ms = 1000 * (now - self.last)
        if wall_ms >= 5.0:
            self.calls.append((self.last, wall_ms, 1000 * (cpu - self.last_cpu), "gap"))
        self.last, self.last_cpu = now, cpu

    def stop(self) -> dict[str, Any]:
        samples: list[tuple[float, tuple[str, ...]]] = []
        if self.sampler is not None:
            self.sampler.stop.set()
            self.sampler.join()
            samples, self.sampler = self.sampler.samples, None
        return self.summary(self.calls, samples, self.began)

    @staticmethod
    def summary(calls: list[tuple[float, float, float, str]], samples: list[tuple[float, tuple[str, ...]]],
                began: float = 0.0) -> dict[str, Any]:
        slow = [c for c in calls if c[1] >= SLOW_MS]
        out: dict[str, Any] = {
            "gaps_over_50ms_wall": len(slow),
            "gaps_over_50ms_gui_cpu": sum(1 for c in calls if c[2] >= SLOW_MS),
            "gap_gui_cpu_ms_max": round(max((c[2] for c in calls), default=0.0), 1),
            "gui_cpu_ms_in_gaps_over_5ms": round(sum(c[2] for c in calls), 1),
        }

        def row(call: tuple[float, float, float, str]) -> dict[str, Any]:
            start, wall, cpu, what = call
            found: dict[str, Any] = {"at_s": round(start - began, 2), "wall_ms": round(wall, 1),
                                     "cpu_ms": round(cpu, 1)}
            inside = [s for t, s in samples if start <= t <= start + wall / 1000]
            if inside:
                tops: collections.Counter[str] = collections.Counter()
                for stack in inside:
                    own = [f for f in stack if "studio/" in f or "pyqtgraph/" in f]
                    tops[" < ".join((own or list(stack))[:4])] += 1
                found.update(samples=len(inside), stacks=tops.most_common(4))
            return found

        out["slowest"] = [row(c) for c in sorted(slow, key=lambda c: -c[1])[:6]]
        out["heaviest_cpu"] = [row(c) for c in sorted(calls, key=lambda c: -c[2])[:10]]
        return out
