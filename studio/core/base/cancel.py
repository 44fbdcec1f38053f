"""Cooperative cancellation shared by every long-running core generator."""

from __future__ import annotations

import threading


class Cancelled(Exception):
    """Raised inside a pipeline when its token was cancelled."""


class CancelToken:
    """Thread-safe flag checked by pipelines between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled()
