"""The Qt adapter over core generators: events, error mapping, cancel and join."""

from __future__ import annotations

import time

from studio.core.base.cancel import Cancelled
from studio.core.base.errors import StudioError, UntrustedPickleError
from studio.core.base.events import Finished, StageStarted
from studio.gui.qt_worker import JobRunner


def _collect(runner: JobRunner) -> dict[str, list]:
    got: dict[str, list] = {"event": [], "failed": []}
    runner.event.connect(got["event"].append)
    runner.failed.connect(lambda message, untrusted: got["failed"].append((message, untrusted)))
    return got


def test_events_arrive_in_order(qtbot):
    runner = JobRunner()
    got = _collect(runner)

    def job(token):
        yield StageStarted("load", "x")
        yield Finished(42)

    with qtbot.waitSignal(runner.done, timeout=5000):
        runner.start(job)
    assert [type(e) for e in got["event"]] == [StageStarted, Finished]
    assert got["failed"] == []
    assert not runner.busy


def test_errors_are_mapped(qtbot):
    runner = JobRunner()
    got = _collect(runner)

    def raising(exc):
        def job(token):
            yield StageStarted("load", "x")
            raise exc
        return job

    for exc in (StudioError("Bad file."), UntrustedPickleError("Pickle."), ZeroDivisionError("boom")):
        with qtbot.waitSignal(runner.done, timeout=5000):
            runner.start(raising(exc))
    assert got["failed"][0] == ("Bad file.", "")
    assert got["failed"][1] == ("Pickle.", "trust")
    assert got["failed"][2][0].startswith("Unexpected error: ZeroDivisionError")


def test_cancelled_job_is_silent(qtbot):
    runner = JobRunner()
    got = _collect(runner)

    def job(token):
        raise Cancelled()
        yield  # pragma: no cover

    with qtbot.waitSignal(runner.done, timeout=5000):
        runner.start(job)
    assert got["failed"] == []


def test_restart_cancels_previous_and_drops_its_signals(qtbot):
    runner = JobRunner()
    got = _collect(runner)

    def slow(token):
        yield StageStarted("load", "old")
        while not token.cancelled:
            time.sleep(0.01)
        yield Finished("old")

    def fast(token):
        yield Finished("new")

    runner.start(slow)
    qtbot.waitUntil(lambda: bool(got["event"]), timeout=5000)
    with qtbot.waitSignal(runner.done, timeout=5000):
        runner.start(fast)
    qtbot.wait(50)
    results = [e.result for e in got["event"] if isinstance(e, Finished)]
    assert results == ["new"]


def test_shutdown_joins_a_running_job(qtbot):
    runner = JobRunner()

    def stubborn(token):
        yield StageStarted("load", "x")
        time.sleep(0.3)  # one uninterruptible step, like a model load
        token.raise_if_cancelled()
        yield Finished(None)

    runner.start(stubborn)
    start = time.perf_counter()
    runner.shutdown()
    assert time.perf_counter() - start < 5
    assert not runner.busy
