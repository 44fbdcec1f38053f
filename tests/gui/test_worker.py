"""The Qt adapter over core generators: events, error mapping, cancel and join."""

from __future__ import annotations

import threading
import time

from PySide6.QtWidgets import QMessageBox

from studio.core.base.cancel import Cancelled
from studio.core.base.errors import StudioError, UntrustedPickleError
from studio.core.base.events import Finished, Metric, RunCancelled, StageStarted
from studio.gui.qt_worker import Job, JobRunner, ask_to_cancel


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


def _until_cancelled(token, seconds: float = 10.0) -> None:
    """Work that notices a cancel at once (the token's flag is a threading.Event)."""
    token._event.wait(seconds)


def test_restart_cancels_previous_then_runs_the_new_one(qtbot):
    """One job at a time: the new job starts only after the cancelled one has ended."""
    runner = JobRunner()
    got = _collect(runner)
    order: list[str] = []

    def slow(token):
        yield StageStarted("load", "old")
        _until_cancelled(token)
        order.append("old ends")
        yield Finished("old")  # after the cancel: dropped

    def fast(token):
        order.append("new starts")
        yield Finished("new")

    old = runner.start(slow)
    qtbot.waitUntil(lambda: bool(got["event"]), timeout=5000)
    with qtbot.waitSignal(runner.done, timeout=5000):
        new = runner.start(fast)
        assert runner.busy and runner.current is new
    assert order == ["old ends", "new starts"]
    assert [e.result for e in got["event"] if isinstance(e, Finished)] == ["new"]
    assert (old.outcome, new.outcome) == ("cancelled", "done") and not runner.busy


def test_cancel_delivers_the_jobs_own_cancel_event(qtbot):
    """Cancel throws Cancelled into the generator at its yield: its `except Cancelled` still speaks."""
    runner = JobRunner()
    seen: list[object] = []

    def job(token):
        step = 0
        try:
            while True:
                step += 1
                yield Metric(step, "train/loss", 1.0 / step)
                time.sleep(0.005)  # a training step
        except Cancelled:
            yield RunCancelled("finetune", f"cancelled during finetune after {step} steps")

    handle = runner.start(Job("run", "the run", job))
    handle.event.connect(seen.append)
    qtbot.waitUntil(lambda: len(seen) >= 3, timeout=5000)
    with qtbot.waitSignal(handle.ended, timeout=5000) as ended:
        handle.cancel()
    assert ended.args == ["cancelled"]
    assert isinstance(seen[-1], RunCancelled) and seen[-1].detail.startswith("cancelled during finetune after ")
    assert all(isinstance(e, Metric) for e in seen[:-1])


def test_a_queued_job_replaced_before_it_ran_never_runs(qtbot):
    runner = JobRunner()
    release = threading.Event()
    ran: list[str] = []

    def blocking(token):
        release.wait(10)  # a step that does not look at the token
        yield Finished("first")

    def job(name):
        def run(token):
            ran.append(name)
            yield Finished(name)
        return run

    runner.start(blocking)
    second = runner.start(job("second"))
    third = runner.start(job("third"))
    assert second.outcome == "cancelled" and not third.outcome
    with qtbot.waitSignal(runner.done, timeout=5000):
        release.set()
    assert ran == ["third"] and third.outcome == "done"


def test_ask_to_cancel(qtbot, monkeypatch):
    runner = JobRunner()
    asked: list[str] = []
    answer = {"button": QMessageBox.StandardButton.No}

    def question(parent, title, text, *args):
        asked.append(text)
        return answer["button"]

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    assert ask_to_cancel(runner, None, "open x") and not asked  # idle: nothing to ask

    def job(token):
        yield StageStarted("sensitivity", "")
        _until_cancelled(token)

    runner.start(Job("sweep", "the sensitivity sweep", job))
    assert not ask_to_cancel(runner, None, "open x")
    assert asked == ["The sensitivity sweep is still running.\n\nCancel it to open x?"]
    answer["button"] = QMessageBox.StandardButton.Yes
    assert ask_to_cancel(runner, None, "open x")
    with qtbot.waitSignal(runner.done, timeout=5000):
        runner.cancel()


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


def test_a_result_and_an_error_reach_their_listeners_with_the_runner_idle(qtbot):
    """The job's end comes in one piece: whoever reacts to its Finished or its error sees the
    runner idle, so a click there starts the next job instead of asking (in a modal question)
    to cancel one that has ended. A job that works on after its result (cleanup) is no exception."""
    runner = JobRunner()
    seen: list[tuple[str, bool, object]] = []

    def finishing(token):
        yield StageStarted("load", "x")
        yield Finished(42)
        time.sleep(0.2)  # the worker thread still busy (or not scheduled) after its result

    def failing(token):
        yield StageStarted("load", "x")
        yield Metric(1, "train/loss", 1.0)  # pending (not urgent) when the error comes: delivered first
        raise StudioError("Bad file.")

    for job in (finishing, failing):
        handle = runner.start(job)
        handle.event.connect(lambda e: seen.append((type(e).__name__, runner.busy, runner.current)))
        handle.failed.connect(lambda message, _o: seen.append((message, runner.busy, runner.current)))
        with qtbot.waitSignal(runner.done, timeout=5000):
            pass
    assert [(what, idle, current is None) for what, idle, current in seen] == [
        ("StageStarted", True, False), ("Finished", False, True),
        ("StageStarted", True, False), ("Metric", False, True), ("Bad file.", False, True)]


def test_a_job_started_from_a_result_runs_after_the_old_one_ended(qtbot):
    runner = JobRunner()
    order: list[str] = []
    busy: list[bool] = []
    runner.busyChanged.connect(busy.append)

    def first(token):
        yield Finished("first")

    def second(token):
        order.append("second runs")
        yield Finished("second")

    old = runner.start(first)
    old.event.connect(lambda e: (order.append("first's result"), order.append(f"new {runner.start(second).outcome!r}")))
    old.ended.connect(lambda outcome: order.append(f"first {outcome}"))
    runner.jobStarted.connect(lambda handle: order.append("started"))
    with qtbot.waitSignal(runner.done, timeout=5000):
        pass
    assert order == ["first's result", "new ''", "first done", "started", "second runs"]
    assert busy == [True, False] and not runner.busy  # one busy period, no flicker between the two


def test_a_thread_still_running_past_its_end_is_kept_until_it_finishes(qtbot, monkeypatch):
    """Destroying a running QThread aborts the app; waiting for it without end would hang it."""
    from PySide6.QtCore import QThread

    from studio.gui import qt_worker

    class Late(QThread):
        def run(self):
            time.sleep(0.5)

    monkeypatch.setattr(qt_worker, "JOIN_MS", 50)
    runner, thread = JobRunner(), Late()
    thread.start()
    start = time.monotonic()
    runner._join(thread)
    assert time.monotonic() - start < 0.4 and thread in runner._stragglers
    del thread
    qtbot.waitUntil(lambda: not runner._stragglers, timeout=5000)
