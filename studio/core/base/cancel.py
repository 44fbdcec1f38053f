"""Cooperative cancellation shared by every long-running core generator."""

from __future__ import annotations

import threading
from typing import Any


class Cancelled(Exception):
    """Raised inside a pipeline when its token was cancelled."""


class CancelToken:
    """Thread-safe flag checked by pipelines between steps. `event` may be a process-shared
    `multiprocessing.Event`, so a job running in a child process reads its parent's cancel."""

    def __init__(self, event: Any = None) -> None:
        self._event = event if event is not None else threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()
