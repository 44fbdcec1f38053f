"""Run job specs in a child process and stream their events back, so the caller's process
(the window) neither shares the GIL with the job's Python-heavy compute nor dies with a native
crash inside it.

One warm worker process is kept (started ahead by `warm_up`, reused across jobs, replaced after
a crash or a kill). On POSIX it is forked from a `forkserver` that has already imported torch and
the pipelines, so a replacement is ready in milliseconds; elsewhere it is spawned. Cancel sets a
process-shared flag the child's CancelToken reads; a child that has not finished `grace_s`
later is terminated (then killed), which also stops it inside a native call.

No wait here is unbounded: a worker that does not start in `start_s` is an error naming that
stage (a job waiting for it also stops on cancel), shutdown waits a few seconds for a start in
progress (a worker started after it is stopped at once), and every join after a terminate or a
kill has a timeout."""

from __future__ import annotations

import atexit
import multiprocessing
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Iterator

from studio.core.base.cancel import Cancelled, CancelToken
from studio.core.base.errors import StudioError, UntrustedCodeError
from studio.core.base.events import Metric, RunCancelled, StageStarted
from studio.core.pipelines.jobs.child import WARM_MODULES, SharedFlag, serve

GRACE_S = 0.3      # from cancel to terminate: the child's own cancel checks get this long
POLL_S = 0.02      # how often a waiting parent looks at the cancel token
BUSY_WAIT_S = 10.0  # a new job waits this long for the previous one to let go of the worker
START_S = 300.0    # a worker not started by then is stuck (the forkserver's first start imports torch: ~20 s loaded)
SHUTDOWN_START_S = 5.0  # shutdown waits this long for a start in progress (a worker it starts later is stopped)
STAGE_NAMES = {"open": "opening the model", "compress": "compression", "validate": "validation", "apply": "applying the plan",
               "measure": "measuring", "evaluate": "evaluation", "finetune": "fine-tuning", "latency": "timing",
               "prepare": "preparing the export", "sensitivity": "the sensitivity sweep"}


class WorkerCrashed(StudioError):
    """The job's worker process died (a native crash, an abort, out of memory); `stage` is where."""

    def __init__(self, message: str, stage: str) -> None:
        super().__init__(message)
        self.stage = stage


@dataclass
class _Worker:
    process: Any
    conn: Any
    cancel: Any
    started: float
    ready_s: float | None = None
    jobs: int = 0
    pid: int | None = field(default=None)
    discarded: bool = False  # set by the first `_discard`: shutdown and the job's thread may both stop it


def default_method() -> str:
    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"


class ProcessJobRunner:
    """Thread-safe; one job at a time. `events(job, cancel)` is a generator the caller drives
    from any thread (the window's QThread): it only relays what the child sends."""

    def __init__(self, method: str | None = None, grace_s: float = GRACE_S, start_s: float = START_S) -> None:
        self.method = method or default_method()
        self._ctx = multiprocessing.get_context(self.method)
        if self.method == "forkserver":
            self._ctx.set_forkserver_preload(["studio.core.pipelines.jobs.child", *WARM_MODULES])
        self.grace_s, self.start_s = grace_s, start_s
        self._scratch = Path(tempfile.mkdtemp(prefix="studio-jobs-"))
        self._lock = threading.Lock()        # guards _worker and _starting
        self._job_lock = threading.Lock()    # held while a job owns the worker
        self._worker: _Worker | None = None
        self._starting: threading.Thread | None = None
        self.crashes = 0
        self.closed = False

    # --- the worker's life ----------------------------------------------------------------
    def warm_up(self) -> None:
        """Start a worker in the background if none is alive (returns at once)."""
        with self._lock:
            if self.closed or self._starting is not None or (self._worker and self._worker.process.is_alive()):
                return
            self._starting = threading.Thread(target=self._start, name="studio-job-worker-start", daemon=True)
            self._starting.start()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        cancel = SharedFlag(self._ctx)
        process = self._ctx.Process(target=serve, args=(child, cancel, str(self._scratch)),
                                    name="studio-job-worker", daemon=False)  # daemons may not have children (sweeps)
        start = time.monotonic()
        late = None
        try:
            process.start()
        finally:
            child.close()
            with self._lock:
                if process.pid is not None:
                    worker = _Worker(process, parent, cancel, start, pid=process.pid)
                    if self.closed:  # shut down while this started: nobody will stop it but us
                        late = worker
                    else:
                        self._worker = worker
                self._starting = None
            if late is not None:
                self._discard(late, replace=False)

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Block until a worker has imported what jobs need; returns its warm-up seconds."""
        worker = self._acquire(timeout, start_s=timeout)
        try:
            self._await_ready(worker, time.monotonic() + timeout)
            return worker.ready_s or 0.0
        finally:
            self._job_lock.release()

    def _await_ready(self, worker: _Worker, deadline: float) -> None:
        while worker.ready_s is None:
            if not wait([worker.conn, worker.process.sentinel], max(0.0, deadline - time.monotonic())):
                raise StudioError("The job worker process did not start in time.")
            try:
                message = worker.conn.recv()
            except (EOFError, OSError):
                raise self._crashed(worker, "start") from None
            if message[0] == "ready":
                worker.ready_s = time.monotonic() - worker.started

    def _acquire(self, timeout: float = BUSY_WAIT_S, cancel: CancelToken | None = None,
                 start_s: float | None = None) -> _Worker:
        if self.closed:
            raise StudioError("The job runner has shut down.")
        if not self._job_lock.acquire(timeout=timeout):
            raise StudioError("The previous job is still stopping; try again in a moment.")
        try:
            self.warm_up()
            self._join_start(self.start_s if start_s is None else start_s, cancel)
            with self._lock:
                worker = self._worker
            if worker is None or not worker.process.is_alive():
                raise StudioError("The job worker process could not be started.")
            return worker
        except BaseException:
            self._job_lock.release()
            raise

    def _join_start(self, seconds: float, cancel: CancelToken | None) -> None:
        """Wait for a start in progress: cancel stops the wait, and so does its deadline (a
        forkserver that never answers, a start blocked in the OS), with an error naming it."""
        starting = self._starting
        deadline = time.monotonic() + seconds
        while starting is not None and starting.is_alive():
            if cancel is not None and cancel.cancelled:
                raise Cancelled()
            if time.monotonic() >= deadline:
                raise StudioError(f"The job worker process did not start within {seconds:g} s (stuck while starting "
                                  "the worker process); try again, or restart the app if it happens again.")
            starting.join(POLL_S)

    def _discard(self, worker: _Worker, replace: bool = True) -> None:
        """Terminate (then kill) a worker and, unless shutting down, start its replacement. Once:
        shutdown and the job's own thread may stop the same worker at the same time, and a second
        close of its pipe closes a file descriptor number the process may have reused."""
        with self._lock:
            if worker.discarded:
                return
            worker.discarded = True
        process = worker.process
        if process.is_alive():
            process.terminate()
            process.join(0.3)
        if process.is_alive():
            process.kill()
            process.join(2.0)
        worker.conn.close()
        with self._lock:
            if self._worker is worker:
                self._worker = None
        if replace and not self.closed:
            self.warm_up()

    def shutdown(self) -> None:
        """Stop the worker (politely, then by force) and remove the scratch folders."""
        self.closed = True
        with self._lock:
            worker, starting = self._worker, self._starting
        if starting is not None:
            starting.join(SHUTDOWN_START_S)  # still starting after that: _start stops it when it is up
            with self._lock:
                worker = self._worker
        if worker is not None:
            try:
                worker.cancel.set()
                worker.conn.send(None)
                worker.process.join(1.0)
            except (OSError, ValueError):
                pass
            self._discard(worker, replace=False)
        shutil.rmtree(self._scratch, ignore_errors=True)

    # --- one job ----------------------------------------------------------------------------
    def events(self, job: Any, cancel: CancelToken | None = None) -> Iterator[object]:
        """Run `job` (a spec from studio.core.pipelines.jobs.specs) in the worker; yields its events.
        Raises what the in-process generator would (StudioError, UntrustedCodeError, Cancelled),
        and WorkerCrashed when the child dies; a child stopped by force after a cancel ends the
        stream with a RunCancelled naming the stage. `Cancelled` thrown in at a yield (the window's
        worker does that) cancels the child; its RunCancelled, if it says one in time, is yielded."""
        cancel = cancel or CancelToken()
        worker = self._acquire(cancel=cancel)
        stage, finished, deadline, thrown, steps = "start", False, None, False, 0
        try:
            worker.cancel.clear()
            try:
                worker.conn.send(job)
            except (OSError, ValueError):  # it died while idle
                finished = True
                raise self._crashed(worker, stage, getattr(job, "kind", "job")) from None
            except BaseException:  # the spec did not pickle (a bug): nothing reached the worker
                finished = True
                raise
            worker.jobs += 1
            while True:
                if cancel.cancelled and deadline is None:
                    worker.cancel.set()
                    deadline = time.monotonic() + self.grace_s
                timeout = POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic()))
                try:
                    ready = wait([worker.conn, worker.process.sentinel], timeout)
                    message = worker.conn.recv() if worker.conn in ready else ("dead",) if ready else None
                except (EOFError, OSError, ValueError):  # it died; or shutdown closed its pipe
                    message = ("dead",)
                if message is None:
                    if deadline is not None and time.monotonic() >= deadline:
                        finished = True
                        self._discard(worker)  # still busy (a native call, a long step): stop it by force
                        yield _stopped(stage, steps)  # the job's last word, said on the child's behalf
                        return
                    continue
                kind = message[0]
                if kind == "ready":
                    worker.ready_s = time.monotonic() - worker.started
                elif kind == "events":
                    for event in message[1]:
                        if isinstance(event, StageStarted):
                            stage = event.name
                        elif isinstance(event, Metric) and event.name == "train/loss":
                            steps = max(steps, event.step)
                        if thrown and not isinstance(event, RunCancelled):
                            continue
                        try:
                            yield event
                        except Cancelled:  # the caller stops here; only the job's RunCancelled still goes out
                            thrown = True
                            cancel.cancel()
                elif kind == "error":
                    finished = True
                    if message[2]:
                        raise UntrustedCodeError(message[1], message[2])
                    raise StudioError(message[1])
                elif kind == "done":
                    finished = True
                    if message[1]:
                        raise Cancelled()
                    return
                elif kind == "dead":
                    finished = True
                    if deadline is not None:  # died while being cancelled: that is a cancel
                        self._discard(worker)
                        yield _stopped(stage, steps)
                        return
                    raise self._crashed(worker, stage, getattr(job, "kind", "job"))
        finally:
            if not finished:
                self._abandon(worker)
            self._job_lock.release()

    def _abandon(self, worker: _Worker) -> None:
        """The caller stopped reading mid-job (its generator was closed): cancel, wait out the
        grace period for the child's "done", else stop it by force."""
        worker.cancel.set()
        deadline = time.monotonic() + self.grace_s
        try:
            while (left := deadline - time.monotonic()) > 0:
                if not wait([worker.conn, worker.process.sentinel], left):
                    break
                if worker.conn.poll():
                    if worker.conn.recv()[0] == "done":
                        return
                else:
                    break  # the process ended
        except (EOFError, OSError):
            pass
        self._discard(worker)

    def _crashed(self, worker: _Worker, stage: str, kind: str = "job") -> WorkerCrashed:
        where = STAGE_NAMES.get(stage, stage)
        if self.closed:  # shutdown stopped it (the app is closing): not a crash
            self._discard(worker, replace=False)
            return WorkerCrashed(f"The {kind} was stopped during {where}: the job runner shut down.", stage)
        worker.process.join(2.0)
        code = worker.process.exitcode
        self.crashes += 1
        self._discard(worker)
        if code is not None and code < 0:
            try:
                how = signal.Signals(-code).name
            except ValueError:
                how = f"signal {-code}"
            how += " (killed, e.g. out of memory)" if code == -signal.SIGKILL else ""
        else:
            how = f"exit code {code}"
        return WorkerCrashed(f"The {kind} stopped: its worker process crashed during {where} ({how}). "
                             "The window, the plan and the original model are unaffected; "
                             "the next job starts a fresh worker.", stage)


def _stopped(stage: str, steps: int) -> RunCancelled:
    """The run pipeline's own words (studio.core.pipelines.run), from what the child had sent."""
    return RunCancelled(stage, f"cancelled during {stage}" + (f" after {steps} fine-tuning steps" if steps else "")
                        + "; the original model is unchanged")


_SHARED: list[ProcessJobRunner] = []
_SHARED_LOCK = threading.Lock()


def shared_runner() -> ProcessJobRunner:
    """The process-wide runner (one warm worker for the whole app), shut down at exit."""
    with _SHARED_LOCK:
        if not _SHARED or _SHARED[0].closed:
            _SHARED[:] = [ProcessJobRunner()]
            atexit.register(_SHARED[0].shutdown)
        return _SHARED[0]
