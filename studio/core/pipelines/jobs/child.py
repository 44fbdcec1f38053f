"""The worker process's side: wait for a job spec, run its generator, stream the events back.

Messages to the parent are tuples of plain data: ("events", [event, ...]) in small time-boxed
batches, ("error", message, trust option), ("done", cancelled). The child's CancelToken reads the
parent's process-shared flag, so cancel is seen wherever the pipelines check it today."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from studio.core.base.cancel import Cancelled, CancelToken
from studio.core.base.errors import StudioError, UntrustedCodeError
from studio.core.base.events import LayerDone, Metric, Progress

BATCH_S = 0.02  # frequent events leave in batches at most this old: fewer wake-ups in the window
FREQUENT = (Metric, Progress, LayerDone)
WARM_MODULES = ("torch", "studio.core.pipelines.run", "studio.core.pipelines.opening", "studio.core.data.sources",
                "studio.core.pipelines.sensitivity.pipeline", "studio.core.pipelines.sensitivity.engine",
                "studio.core.pipelines.export.pipeline", "studio.core.pipelines.lr_finder")


# Only exports need these; torch.onnx's exporter alone took 9 s to import on the loaded 2-core
# machine (torch itself 16 s), which the first export in a fresh worker paid. A ready worker
# imports them while it has no job (between modules it checks for one; a job never waits for more
# than the import in progress). On the worker's main thread, not beside a job: two threads
# importing torch's submodules at once can see a partly initialised module.
LATE_MODULES = ("torch.onnx._internal.exporter._core", "onnx", "onnxruntime", "onnxruntime.quantization")


class SharedFlag:
    """The parent's cancel, as one byte of shared memory with no lock. A `multiprocessing.Event`
    takes a process-shared lock on every read: a child killed while reading it (terminated after
    the grace period, killed for memory) leaves that lock held for good, and the parent's next
    `set()` or `clear()` on it waits forever. Same calls as an Event, as CancelToken uses them."""

    def __init__(self, ctx: Any) -> None:
        self._value = ctx.RawValue("b", 0)

    def set(self) -> None:
        self._value.value = 1

    def clear(self) -> None:
        self._value.value = 0

    def is_set(self) -> bool:
        return bool(self._value.value)


def warm_imports(names: tuple[str, ...] = WARM_MODULES) -> None:
    """What every job needs, imported while the user is still reading the tree."""
    import importlib

    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # a broken optional import shows up in the job that needs it
            pass


def job_threads() -> int:
    """Torch threads for a job: every core but one, which stays with the window
    (`STUDIO_JOB_THREADS=N` overrides). On a 2-core machine that is one: with both, the digits
    run stalled the window up to 50-60 ms (p99 16-30) against 20-36 (13-14), and a busy machine
    took the digits sweep from 1.9 s to 35-50 s; a conv-heavy model then runs up to ~1.45x
    slower than on both cores (MobileNetV2 sweep: 22 s against 15 s in the window's own process,
    which stalled it 73-86 ms)."""
    value = os.environ.get("STUDIO_JOB_THREADS", "").strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(1, cores - 1)


def serve(conn: Any, cancel_event: Any, scratch_root: str) -> None:
    """The worker's main loop; returns when the parent sends None or goes away."""
    warm_imports()
    conn.send(("ready", os.getpid()))
    for name in LATE_MODULES:
        if conn.poll():  # a job is waiting: it imports what it needs itself
            break
        warm_imports((name,))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        # on a thread of its own, with every core but the window's (job_threads)
        thread = threading.Thread(target=run_one, args=(conn, job, CancelToken(cancel_event), Path(scratch_root)),
                                  name="studio-job", daemon=True)
        thread.start()
        thread.join()


def run_one(conn: Any, job: Any, token: CancelToken, scratch_root: Path) -> None:
    import torch

    torch.set_num_threads(job_threads())
    scratch = Path(tempfile.mkdtemp(prefix=f"{job.kind}-", dir=scratch_root))
    pending: list[object] = []
    sent = time.monotonic()
    cancelled, error = False, None
    try:
        for event in job.events(token):
            pending.append(job.portable(event, scratch))
            if not isinstance(event, FREQUENT) or time.monotonic() - sent >= BATCH_S:
                conn.send(("events", pending))
                pending, sent = [], time.monotonic()
    except Cancelled:
        cancelled = True
    except UntrustedCodeError as exc:
        error = ("error", str(exc), exc.option)
    except StudioError as exc:
        error = ("error", str(exc), "")
    except Exception as exc:  # a bug, not a user error: the traceback goes to the log
        traceback.print_exc(file=sys.stderr)
        error = ("error", f"Unexpected error: {type(exc).__name__}: {exc}", "")
    finally:
        if not any(scratch.iterdir()):
            shutil.rmtree(scratch, ignore_errors=True)
    if pending:  # what happened before the end, in order, then how it ended
        conn.send(("events", pending))
    conn.send(error or ("done", cancelled))
