"""The one adapter from core event generators to Qt signals (house rules 6-8).

A job is a callable `factory(cancel_token) -> Iterator[event]`; it runs on a QThread
and every event reaches the main thread through queued signals, so only the main
thread touches widgets. `JobRunner` keeps one job at a time and joins on shutdown.
"""

from __future__ import annotations

import sys
import time
import traceback
from typing import Callable, Iterator

from PySide6.QtCore import QObject, Qt, QThread, Signal, Slot

from studio.core.base.cancel import CancelToken, Cancelled
from studio.core.base.errors import StudioError, UntrustedCodeError
from studio.core.base.events import LayerDone, Metric, Progress
from studio.gui.qt_gui_priority import gui_priority

JobFactory = Callable[[CancelToken], Iterator[object]]


BATCH_S = 0.04  # frequent events (steps, progress) cross to the GUI thread in batches of at most this age
FREQUENT = (Metric, Progress, LayerDone)


class PipelineWorker(QObject):
    """Drives one generator, stopping between yields once cancelled.

    Events cross threads as lists: a fine-tuning loop yields hundreds of metric and progress
    events a second, and each queued signal wakes the GUI thread, which then waits for the
    GIL the worker holds; batched, the GUI thread wakes ~25 times a second. Any other event
    (a stage, a warning, the result) goes at once, with whatever is pending before it."""

    events = Signal(list)
    failed = Signal(str, str)  # message, the LoadRequest trust option that would allow it ('' if none)
    done = Signal()

    def __init__(self, factory: JobFactory) -> None:
        super().__init__()
        self._factory = factory
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
            events = self._factory(self._token)
            pending: list[object] = []
            sent = time.monotonic()
            try:
                for event in events:
                    if self._token.cancelled:
                        pending.clear()
                        break
                    pending.append(event)
                    if not isinstance(event, FREQUENT) or time.monotonic() - sent >= BATCH_S:
                        self.events.emit(pending)
                        pending, sent = [], time.monotonic()
            finally:
                if pending and not self._token.cancelled:
                    self.events.emit(pending)
                close = getattr(events, "close", None)
                if close is not None:
                    close()
        except Cancelled:
            pass
        except UntrustedCodeError as exc:
            if not self._token.cancelled:
                self.failed.emit(str(exc), exc.option)
        except StudioError as exc:
            if not self._token.cancelled:
                self.failed.emit(str(exc), "")
        except Exception as exc:  # a bug, not a user error: keep the app alive, log the traceback
            traceback.print_exc(file=sys.stderr)
            if not self._token.cancelled:
                self.failed.emit(f"Unexpected error: {type(exc).__name__}: {exc}", "")
        finally:
            self.done.emit()


class JobRunner(QObject):
    """Runs one job at a time; forwards only the current job's signals.

    Starting a job cancels and joins the previous one (the window disables its
    actions while busy, so that join is normally instant); `shutdown` does the same
    on close so no QThread is destroyed while running.
    """

    event = Signal(object)
    failed = Signal(str, str)  # message, trust option needed ("" if none)
    done = Signal()
    busyChanged = Signal(bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._worker: PipelineWorker | None = None
        self._thread: QThread | None = None
        # Stopped jobs stay referenced until their queued `done` arrives, so no queued
        # signal ever outlives its sender.
        self._retired: dict[PipelineWorker, QThread] = {}
        priority = gui_priority()
        self.busyChanged.connect(lambda busy: priority.job_started() if busy else priority.job_ended())

    @property
    def busy(self) -> bool:
        return self._worker is not None

    def start(self, factory: JobFactory) -> None:
        self._stop()
        worker = PipelineWorker(factory)
        thread = QThread()
        thread.setObjectName("studio-job")
        worker.moveToThread(thread)
        thread.started.connect(worker.run)
        worker.done.connect(thread.quit, Qt.ConnectionType.DirectConnection)  # thread-safe; main may be waiting
        worker.events.connect(self._on_events)
        worker.failed.connect(self._on_failed)
        worker.done.connect(self._on_done)
        self._worker, self._thread = worker, thread
        thread.start()
        self.busyChanged.emit(True)

    def cancel(self) -> None:
        """Cooperative: the job stops at its next step; its later signals are dropped."""
        if self._worker is not None:
            self._worker.cancel()

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Cancel and join (closeEvent): the thread must not outlive the window."""
        self._stop(timeout_ms)

    def _stop(self, timeout_ms: int = 30000) -> None:
        worker, thread = self._worker, self._thread
        self._worker = self._thread = None
        if worker is None or thread is None:
            return
        worker.cancel()
        self._retired[worker] = thread
        thread.quit()
        thread.wait(timeout_ms)
        self.busyChanged.emit(False)

    def _current(self) -> bool:
        return self._worker is not None and self.sender() is self._worker

    @Slot(list)
    def _on_events(self, events: list) -> None:
        if not self._current():
            return
        worker = self._worker
        for event in events:
            if self._worker is not worker:  # a slot started another job or shut down: drop the rest
                return
            self.event.emit(event)

    @Slot(str, bool)
    def _on_failed(self, message: str, untrusted: str) -> None:
        if self._current():
            self.failed.emit(message, untrusted)

    @Slot()
    def _on_done(self) -> None:
        retired_thread = self._retired.pop(self.sender(), None)  # type: ignore[call-overload]
        if retired_thread is not None:
            retired_thread.wait()
            return
        if not self._current():
            return
        thread = self._thread
        self._worker = self._thread = None
        if thread is not None:
            thread.wait()  # run() has returned and quit() was called directly: this is instant
        self.busyChanged.emit(False)
        self.done.emit()
