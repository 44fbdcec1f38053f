"""No wait of the process job runner is unbounded: a worker that does not start is an error naming
that stage (and a cancel ends the wait at once), shutdown does not wait for a start for long and
stops the worker that start brings up, a worker that dies before its first job or is stopped by
shutdown mid-job ends the job with an error, and the cancel flag has no lock a dead child could
keep. The stuck starts are simulated (a Process whose start blocks); the rest are real children."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from studio.core.base.cancel import Cancelled, CancelToken
from studio.core.base.errors import StudioError
from studio.core.base.events import Finished
from studio.core.model.loaders import LoadRequest
from studio.core.pipelines.jobs import ProcessJobRunner, RunJob, WorkerCrashed
from studio.core.pipelines.jobs import runner as runner_module
from studio.core.pipelines.jobs.child import SharedFlag

MODELS = Path(__file__).with_name("process_models.py")
SMALL = RunJob(LoadRequest(f"{MODELS}:small"), {"rules": []}, None, {})


class StuckStart:
    """A worker process whose start blocks (a forkserver that never answers) until released;
    then it comes up (pid set) or fails as a start does."""

    def __init__(self, release: threading.Event, comes_up: bool) -> None:
        self.release, self.comes_up = release, comes_up
        self.pid: int | None = None
        self.stopped = False

    def start(self) -> None:
        self.release.wait(30)
        if not self.comes_up:
            raise OSError("the forkserver went away")
        self.pid = 424242

    def is_alive(self) -> bool:
        return self.pid is not None and not self.stopped

    def terminate(self) -> None:
        self.stopped = True

    kill = terminate

    def join(self, timeout: float | None = None) -> None:
        pass


def stuck_runner(comes_up: bool = False, start_s: float = 0.5):
    release, made = threading.Event(), []
    runner = ProcessJobRunner(method="spawn", start_s=start_s)
    ctx = runner._ctx

    def process(*args, **kwargs):
        made.append(StuckStart(release, comes_up))
        return made[-1]

    runner._ctx = SimpleNamespace(Pipe=ctx.Pipe, RawValue=ctx.RawValue, Process=process)
    return runner, release, made


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the failed start's traceback
def test_a_worker_that_does_not_start_is_an_error_naming_that_stage():
    runner, release, _ = stuck_runner(start_s=0.5)
    begun = time.monotonic()
    with pytest.raises(StudioError, match=r"did not start within 0.5 s \(stuck while starting the worker process\)"):
        list(runner.events(SMALL))
    assert time.monotonic() - begun < 5
    release.set()  # the start fails after all: the next job is told so, the lock was let go
    runner._starting and runner._starting.join(5)
    with pytest.raises(StudioError, match="could not be started"):
        list(runner.events(SMALL))
    runner.shutdown()


def test_cancel_while_the_worker_starts_ends_the_wait_at_once():
    runner, release, _ = stuck_runner(comes_up=True, start_s=60)
    token = CancelToken()
    threading.Timer(0.2, token.cancel).start()
    begun = time.monotonic()
    with pytest.raises(Cancelled):
        list(runner.events(SMALL, token))
    assert time.monotonic() - begun < 5
    release.set()
    runner.shutdown()


def test_shutdown_during_a_start_returns_and_stops_the_worker_that_start_brings_up(monkeypatch):
    monkeypatch.setattr(runner_module, "SHUTDOWN_START_S", 0.2)
    runner, release, made = stuck_runner(comes_up=True)
    runner.warm_up()
    starting = runner._starting
    begun = time.monotonic()
    runner.shutdown()
    assert time.monotonic() - begun < 5 and starting.is_alive()
    release.set()  # it comes up after the shutdown: stopped at once, never handed out
    starting.join(5)
    assert made[0].pid is not None and made[0].stopped and runner._worker is None


def test_the_cancel_flag_is_lock_free_shared_memory():
    """A multiprocessing.Event locks on every read; a child killed while reading keeps that lock
    and the parent's next set() waits forever. The flag is one shared byte: nothing to keep."""
    import multiprocessing

    flag = SharedFlag(multiprocessing.get_context("spawn"))
    assert not hasattr(flag, "_cond") and not flag.is_set()
    flag.set()
    assert flag.is_set()
    flag.clear()
    assert not flag.is_set()


def test_a_worker_killed_before_its_first_job_is_a_crash_at_start_and_the_next_job_runs(runner):
    runner.wait_ready()
    os.kill(runner._worker.pid, signal.SIGKILL)
    with pytest.raises(WorkerCrashed) as caught:
        list(runner.events(SMALL))
    assert caught.value.stage == "start" and "SIGKILL" in str(caught.value)
    assert isinstance(list(runner.events(SMALL))[-1], Finished)


def test_shutdown_while_a_job_runs_ends_that_job_with_an_error_not_a_hang():
    """The job's thread sees its pipe closed by shutdown: an error saying so, within seconds."""
    from tests.core.process_models import SLEEPING

    SLEEPING.unlink(missing_ok=True)
    runner, outcome = ProcessJobRunner(), []

    def job() -> None:
        try:
            list(runner.events(RunJob(LoadRequest(f"{MODELS}:sleep_on_load"), {"rules": []}, None, {})))
        except Exception as exc:  # noqa: BLE001 - the test reads it
            outcome.append(exc)

    thread = threading.Thread(target=job)
    thread.start()
    def blocked() -> bool:  # our worker wrote the marker (not a stale one of another test's child)
        worker = runner._worker
        try:
            return worker is not None and SLEEPING.read_text() == str(worker.pid)
        except OSError:
            return False

    deadline = time.monotonic() + 120
    while not blocked() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert blocked(), "the worker never reached the blocking load"
    begun = time.monotonic()
    runner.shutdown()
    thread.join(10)
    assert not thread.is_alive() and time.monotonic() - begun < 10
    assert outcome and isinstance(outcome[0], StudioError) and "shut down" in str(outcome[0]), outcome


def test_a_worker_stopped_by_shutdown_and_its_job_at_once_is_stopped_once():
    """Both threads stop the same worker: its pipe must close once (the second close raised EBADF,
    or closed whatever file had reused that descriptor number)."""
    runner, closes = ProcessJobRunner(), []

    class Pipe:
        def close(self) -> None:
            closes.append(threading.current_thread().name)
            time.sleep(0.05)  # the window in which the other thread used to close it too

    class Process:
        def is_alive(self) -> bool:
            return False

    worker = runner_module._Worker(Process(), Pipe(), None, time.monotonic())
    runner.closed = True  # no replacement
    threads = [threading.Thread(target=runner._discard, args=(worker,), name=f"t{i}") for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(closes) == 1 and worker.discarded
