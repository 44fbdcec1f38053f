"""The one adapter from core event generators to Qt signals: generator pipelines, one job at
a time, and only the main thread touches widgets.

A job is described by `Job` (its kind, a label for prompts, the in-process generator factory
and an optional plain-data `spec` another backend can run instead); it runs on a QThread and
every event reaches the main thread through queued signals. `JobRunner` runs one job at a
time: starting another cancels the running one and starts the new one when it has ended.
A backend that runs jobs elsewhere (a child process) plugs in as `worker_class`: it receives
the `Job` and speaks `PipelineWorker`'s two signals and two end attributes.

A job's end arrives in one piece: its last events (its `Finished` or `RunCancelled`) and its
error ride on `done`, and the runner lets go of the job before handing them out. Whoever reacts
to a result or an error therefore sees the runner idle: a click right after it starts the next
job instead of asking (in a modal question) to cancel one that has already ended. Before, the
result and the error came a signal ahead of `done`; on a loaded machine a test could click in
between, and the question it got blocked the offscreen run until the hang watchdog stopped it.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import QMessageBox, QWidget

from studio.core.base.cancel import CancelToken, Cancelled
from studio.core.base.errors import StudioError, UntrustedCodeError
from studio.core.base.events import Finished, Note, RunCancelled, StageStarted, Warning
from studio.gui.qt_gui_priority import gui_priority

JobFactory = Callable[[CancelToken], Iterator[object]]

BATCH_S = 0.04  # frequent events (steps, progress, cells) cross to the GUI thread in batches of at most this age
URGENT = (StageStarted, Finished, RunCancelled, Warning, Note)  # sent at once, with whatever is pending
FINAL = (Finished, RunCancelled)  # held for `done` (sent at once only if another event follows)
JOIN_MS = 10000  # waiting for a thread whose `run` has returned: instant, unless something is badly stuck


@dataclass(frozen=True)
class Job:
    """What to run. `factory` runs it in this process; `spec` is plain, picklable data naming the
    same job for a backend in another process (None: in-process only)."""

    kind: str
    label: str
    factory: JobFactory
    spec: Mapping[str, object] | None = None


class PipelineWorker(QObject):
    """Drives one generator, stopping at the next yield once cancelled.

    Events cross threads as lists: a fine-tuning loop yields hundreds of metric and progress
    events a second, and each queued signal wakes the GUI thread, which then waits for the
    GIL the worker holds; batched, the GUI thread wakes ~25 times a second. A stage, a
    warning, a note, the result or a cancel goes at once, with whatever is pending before it.

    On cancel `Cancelled` is thrown into the generator at its current yield, so a pipeline's
    `except Cancelled: yield RunCancelled(...)` still runs; that final event is delivered and
    anything else after the click is dropped.

    The end is one `done`, set up before it is emitted: `final` (the events still pending, in
    order) and `failure` (message, the LoadRequest trust option that would allow it ('' if
    none); None when it did not fail or was cancelled)."""

    events = Signal(list)
    done = Signal()

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job
        self._token = CancelToken()
        self.final: list[object] = []
        self.failure: tuple[str, str] | None = None

    def cancel(self) -> None:
        self._token.cancel()

    @property
    def cancelled(self) -> bool:
        return self._token.cancelled

    @Slot()
    def run(self) -> None:
        """Runs in the worker thread; never raises (errors become `failed`)."""
        try:
            self._drive()
        except Cancelled:
            pass
        except UntrustedCodeError as exc:
            self._fail(str(exc), exc.option)
        except StudioError as exc:
            self._fail(str(exc), "")
        except Exception as exc:  # a bug, not a user error: keep the app alive, log the traceback
            traceback.print_exc(file=sys.stderr)
            self._fail(f"Unexpected error: {type(exc).__name__}: {exc}", "")
        finally:
            self.done.emit()

    def _fail(self, message: str, option: str) -> None:
        if not self.cancelled:
            self.failure = (message, option)

    def _drive(self) -> None:
        events = iter(self.job.factory(self._token))
        pending: list[object] = []
        sent = time.monotonic()
        try:
            while not self.cancelled:
                try:
                    event = next(events)
                except StopIteration:
                    return
                if self.cancelled and not isinstance(event, RunCancelled):
                    break
                if pending and isinstance(pending[-1], FINAL):  # it was not the last one after all
                    self.events.emit(pending)
                    pending, sent = [], time.monotonic()
                pending.append(event)
                if isinstance(event, RunCancelled):
                    return
                if not isinstance(event, FINAL) and (isinstance(event, URGENT) or time.monotonic() - sent >= BATCH_S):
                    self.events.emit(pending)
                    pending, sent = [], time.monotonic()
            self._final_event(events, pending)
        finally:
            self.final = pending  # what happened before the end goes out with it (an error's too)
            close = getattr(events, "close", None)
            if close is not None:
                close()

    def _final_event(self, events: Iterator[object], pending: list[object]) -> None:
        """The job's own last word after a cancel: its RunCancelled, if its pipeline yields one."""
        throw = getattr(events, "throw", None)
        if throw is None:
            return
        try:
            event = throw(Cancelled())
        except (StopIteration, Cancelled):
            return
        if isinstance(event, RunCancelled):
            pending.append(event)


class JobHandle(QObject):
    """One started job: its own events, failure and end (exactly once, last)."""

    event = Signal(object)
    failed = Signal(str, str)  # message, trust option needed ("" if none)
    ended = Signal(str)  # "done" | "failed" | "cancelled"

    def __init__(self, job: Job, runner: JobRunner) -> None:
        super().__init__()  # no parent: freed with its last reference, and with it whatever its slots hold
        self.job = job
        self.outcome = ""  # set when ended
        self.has_failed = False
        self._runner = runner

    def cancel(self) -> None:
        self._runner.cancel_job(self)

    def _end(self, outcome: str) -> None:
        if not self.outcome:
            self.outcome = outcome
            self.ended.emit(outcome)


class JobRunner(QObject):
    """Runs one job at a time; one per window, shared by every controller.

    `start` while a job runs cancels it and queues the new job, which starts when the old one has
    ended (its final events included), so two jobs never work on the model together and the GUI
    thread never waits. `shutdown` cancels and joins, so no QThread is destroyed while running.
    """

    event = Signal(object)  # the current job's events
    failed = Signal(str, str)
    jobStarted = Signal(object)  # JobHandle
    jobEnded = Signal(object)  # JobHandle
    busyChanged = Signal(bool)  # idle <-> busy only: no flicker between a cancelled job and the next
    done = Signal()  # idle again

    def __init__(self, parent: QObject | None = None,
                 worker_class: Callable[[Job], PipelineWorker] = PipelineWorker) -> None:
        super().__init__(parent)
        self._worker_class = worker_class
        self._worker: PipelineWorker | None = None
        self._thread: QThread | None = None
        self._handles: dict[PipelineWorker, JobHandle] = {}
        self._queued: JobHandle | None = None
        # Stopped jobs stay referenced until their queued `done` arrives, so no queued
        # signal ever outlives its sender.
        self._retired: dict[PipelineWorker, QThread] = {}
        self._stragglers: set[QThread] = set()  # past their `done` but not finished in JOIN_MS: kept until they are
        self._ending = False  # handing out an ended job's last events: a start now runs right after
        self._said_busy = False
        priority = gui_priority()
        self.busyChanged.connect(lambda busy: priority.job_started() if busy else priority.job_ended())

    @property
    def busy(self) -> bool:
        return self._worker is not None or self._queued is not None

    @property
    def current(self) -> JobHandle | None:
        """The job that runs (or is queued to run next)."""
        if self._queued is not None:
            return self._queued
        return self._handles.get(self._worker) if self._worker is not None else None

    def start(self, job: Job | JobFactory) -> JobHandle:
        if not isinstance(job, Job):
            job = Job("job", "the running job", job)
        handle = JobHandle(job, self)
        if self._queued is not None:
            self._queued._end("cancelled")  # replaced before it ran
            self._queued = None
        if self._worker is not None or self._ending:
            self._queued = handle
            if self._worker is not None:
                self._worker.cancel()
            return handle
        self._launch(handle)
        return handle

    def cancel(self) -> None:
        """Cooperative: the job stops at its next step; its final RunCancelled still arrives."""
        if self._queued is not None:
            self._queued._end("cancelled")
            self._queued = None
            if self._worker is None and not self._ending:
                self._idle()
        if self._worker is not None:
            self._worker.cancel()

    def cancel_job(self, handle: JobHandle) -> None:
        if handle is self._queued or self._handles.get(self._worker) is handle:  # type: ignore[arg-type]
            self.cancel()

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Cancel and join (closeEvent): the thread must not outlive the window."""
        if self._queued is not None:
            self._queued._end("cancelled")
            self._queued = None
        worker, thread = self._worker, self._thread
        self._worker = self._thread = None
        if worker is None or thread is None:
            return
        worker.cancel()
        self._retired[worker] = thread
        thread.quit()
        thread.wait(timeout_ms)  # if it is still running, its `done` (when it comes) lets it go
        handle = self._handles.pop(worker, None)
        if handle is not None:
            handle._end("cancelled")
            self.jobEnded.emit(handle)
        self._idle()

    def _launch(self, handle: JobHandle) -> None:
        worker = self._worker_class(handle.job)
        thread = QThread()
        thread.setObjectName(f"studio-{handle.job.kind}")
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)  # thread-safe; main may be waiting
        worker.events.connect(self._on_events)
        worker.done.connect(self._on_done)
        self._worker, self._thread = worker, thread
        self._handles[worker] = handle
        thread.start()
        self._say_busy(True)
        self.jobStarted.emit(handle)

    def _say_busy(self, busy: bool) -> None:
        if busy != self._said_busy:
            self._said_busy = busy
            self.busyChanged.emit(busy)

    def _idle(self) -> None:
        self._say_busy(False)
        self.done.emit()

    @Slot(list)
    def _on_events(self, events: list) -> None:
        worker = self.sender()
        self._deliver(self._handles.get(worker), events, worker is self._worker)  # type: ignore[call-overload]

    def _deliver(self, handle: JobHandle | None, events: list, current: bool) -> None:
        for event in events:
            if handle is None or handle.outcome:
                return
            handle.event.emit(event)
            if current:
                self.event.emit(event)

    @Slot()
    def _on_done(self) -> None:
        worker = self.sender()
        retired_thread = self._retired.pop(worker, None)  # type: ignore[call-overload]
        if retired_thread is not None:
            self._join(retired_thread)
            return
        if worker is not self._worker:
            return
        thread, handle = self._thread, self._handles.pop(worker, None)  # type: ignore[call-overload]
        self._worker = self._thread = None
        if thread is not None:
            self._join(thread)
        if handle is not None:  # the job is over: its last events, its error, its end
            self._ending = True
            try:
                self._deliver(handle, worker.final, current=True)
                if worker.failure is not None and not handle.outcome:
                    handle.has_failed = True
                    handle.failed.emit(*worker.failure)
                    self.failed.emit(*worker.failure)
                handle._end("failed" if handle.has_failed else "cancelled" if worker.cancelled else "done")
                self.jobEnded.emit(handle)
            finally:
                self._ending = False
        queued, self._queued = self._queued, None
        if queued is not None:
            self._launch(queued)
        else:
            self._idle()

    def _join(self, thread: QThread) -> None:
        """`run` has returned and quit() was called directly: this is instant. A thread that is
        somehow still running stays referenced (destroying a running QThread aborts the app)."""
        if not thread.wait(JOIN_MS):
            print(f"studio: the job thread {thread.objectName()} did not finish in {JOIN_MS / 1000:g} s "
                  "after its job ended", file=sys.stderr)
            self._stragglers.add(thread)
            thread.finished.connect(lambda: self._stragglers.discard(thread))


def ask_to_cancel(runner: JobRunner, parent: QWidget | None, action: str) -> bool:
    """True when nothing runs, or the user agreed to cancel what does (then the caller's `start`
    cancels it and runs next). One question, in the words of the running job's label."""
    handle = runner.current
    if handle is None:
        return True
    answer = QMessageBox.question(
        parent, "Cancel the running job?",
        f"{handle.job.label[:1].upper()}{handle.job.label[1:]} is still running.\n\nCancel it to {action}?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No)
    return answer == QMessageBox.StandardButton.Yes
