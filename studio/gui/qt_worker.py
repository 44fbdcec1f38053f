"""The one adapter from core event generators to Qt signals: generator pipelines, one job at
a time, and only the main thread touches widgets.

A job is described by `Job` (its kind, a label for prompts, the in-process generator factory
and an optional plain-data `spec` another backend can run instead); it runs on a QThread and
every event reaches the main thread through queued signals. `JobRunner` runs one job at a
time: starting another cancels the running one and starts the new one when it has ended.
A backend that runs jobs elsewhere (a child process) plugs in as `worker_class`: it receives
the `Job` and speaks the same three signals as `PipelineWorker`.
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
    anything else after the click is dropped."""

    events = Signal(list)
    failed = Signal(str, str)  # message, the LoadRequest trust option that would allow it ('' if none)
    done = Signal()

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job
        self._token = CancelToken()

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
            if not self.cancelled:
                self.failed.emit(str(exc), exc.option)
        except StudioError as exc:
            if not self.cancelled:
                self.failed.emit(str(exc), "")
        except Exception as exc:  # a bug, not a user error: keep the app alive, log the traceback
            traceback.print_exc(file=sys.stderr)
            if not self.cancelled:
                self.failed.emit(f"Unexpected error: {type(exc).__name__}: {exc}", "")
        finally:
            self.done.emit()

    def _drive(self) -> None:
        events = iter(self.job.factory(self._token))
        pending: list[object] = []
        sent = time.monotonic()
        try:
            while not self.cancelled:
                try:
                    event = next(events)
                except StopIteration:
                    break
                if self.cancelled and not isinstance(event, RunCancelled):
                    break
                pending.append(event)
                if isinstance(event, URGENT) or time.monotonic() - sent >= BATCH_S:
                    self.events.emit(pending)
                    pending, sent = [], time.monotonic()
                if isinstance(event, RunCancelled):
                    return
            if self.cancelled:
                self._final_event(events)
            elif pending:
                self.events.emit(pending)
        finally:
            close = getattr(events, "close", None)
            if close is not None:
                close()

    def _final_event(self, events: Iterator[object]) -> None:
        """The job's own last word after a cancel: its RunCancelled, if its pipeline yields one."""
        throw = getattr(events, "throw", None)
        if throw is None:
            return
        try:
            event = throw(Cancelled())
        except (StopIteration, Cancelled):
            return
        if isinstance(event, RunCancelled):
            self.events.emit([event])


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
        if self._worker is not None:
            self._queued = handle
            self._worker.cancel()
            return handle
        self._launch(handle, was_busy=False)
        return handle

    def cancel(self) -> None:
        """Cooperative: the job stops at its next step; its final RunCancelled still arrives."""
        if self._queued is not None:
            self._queued._end("cancelled")
            self._queued = None
            if self._worker is None:
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
        thread.wait(timeout_ms)
        handle = self._handles.pop(worker, None)
        if handle is not None:
            handle._end("cancelled")
            self.jobEnded.emit(handle)
        self._idle()

    def _launch(self, handle: JobHandle, was_busy: bool) -> None:
        worker = self._worker_class(handle.job)
        thread = QThread()
        thread.setObjectName(f"studio-{handle.job.kind}")
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)  # thread-safe; main may be waiting
        worker.events.connect(self._on_events)
        worker.failed.connect(self._on_failed)
        worker.done.connect(self._on_done)
        self._worker, self._thread = worker, thread
        self._handles[worker] = handle
        thread.start()
        if not was_busy:
            self.busyChanged.emit(True)
        self.jobStarted.emit(handle)

    def _idle(self) -> None:
        self.busyChanged.emit(False)
        self.done.emit()

    @Slot(list)
    def _on_events(self, events: list) -> None:
        worker = self.sender()
        handle = self._handles.get(worker)  # type: ignore[call-overload]
        for event in events:
            if handle is None or handle.outcome:
                return
            handle.event.emit(event)
            if worker is self._worker:
                self.event.emit(event)

    @Slot(str, str)
    def _on_failed(self, message: str, untrusted: str) -> None:
        handle = self._handles.get(self.sender())  # type: ignore[call-overload]
        if handle is not None and not handle.outcome:
            handle.has_failed = True
            handle.failed.emit(message, untrusted)
            self.failed.emit(message, untrusted)

    @Slot()
    def _on_done(self) -> None:
        worker = self.sender()
        retired_thread = self._retired.pop(worker, None)  # type: ignore[call-overload]
        if retired_thread is not None:
            retired_thread.wait()
            return
        if worker is not self._worker:
            return
        thread, handle = self._thread, self._handles.pop(worker, None)  # type: ignore[call-overload]
        self._worker = self._thread = None
        if thread is not None:
            thread.wait()  # run() has returned and quit() was called directly: this is instant
        if handle is not None:
            handle._end("failed" if handle.has_failed else "cancelled" if worker.cancelled else "done")
            self.jobEnded.emit(handle)
        queued, self._queued = self._queued, None
        if queued is not None:
            self._launch(queued, was_busy=True)
        else:
            self._idle()


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
