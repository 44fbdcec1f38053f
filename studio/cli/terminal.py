"""Terminal front end for core pipelines: a progress line on a TTY, metric lines otherwise,
and Ctrl-C turned into a cooperative cancel."""

from __future__ import annotations

import os
import signal
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator

from studio.core.base.cancel import CancelToken
from studio.core.base.units import eta_seconds, format_duration
from studio.core.base.events import (EvaluationProgress, Finished, LayerDone, Metric, Progress, RunCancelled,
                                     StageStarted, Warning)


@contextmanager
def cancel_on_sigint(cancel: CancelToken, immediate: bool = False) -> Iterator[None]:
    """First Ctrl-C asks the pipeline to stop at its next check; a second one aborts.
    `immediate`: the first one aborts at once (an export has nothing worth finishing a stage
    for, and converters run for long stretches without a check; cleanup runs in `finally`)."""
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if immediate:
            cancel.cancel()
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        if cancel.cancelled:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        cancel.cancel()
        if sys.stderr.isatty():  # scripts get one line: the final 'cancelled'
            print("\ncancelling… (Ctrl-C again to abort)", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def user_stdout_to_stderr(enabled: bool = True) -> Iterator[None]:
    """While the model's own code runs (import, build, forward), whatever it prints — through
    Python or straight to file descriptor 1 — goes to stderr, so `--json` stdout stays JSON.
    Print the JSON after the block."""
    if not enabled:
        yield
        return
    real = sys.stdout
    for stream in (real, sys.__stdout__):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no file descriptor 1 (embedded): Python-level redirection only
        saved = None
    sys.stdout = sys.stderr
    try:
        yield
    finally:
        try:
            sys.stderr.flush()
            import ctypes

            ctypes.CDLL(None).fflush(None)  # C code's buffered printf output goes to stderr too
        except (OSError, ValueError, AttributeError):
            pass
        sys.stdout = real
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


class TerminalProgress:
    """Stage lines always; on a terminal, a progress bar with the stage's ETA for every Progress
    event (scripts and `--json` get no bar: `quiet`, or stderr is not a terminal)."""

    def __init__(self, quiet: bool = False, stream=None, clock=time.monotonic) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.loss: float | None = None
        self._clock = clock
        self._bar_shown = False
        self._stage_start = clock()
        self._first: tuple[float, int] | None = None  # (time, step) of the stage's first Progress

    def _clear_bar(self) -> None:
        if self._bar_shown:
            print("\r\033[K", file=self.stream, end="")
            self._bar_shown = False

    def _line(self, text: str) -> None:
        if not self.quiet:
            self._clear_bar()
            print(text, file=self.stream, flush=True)

    def _bar(self, event: Progress) -> None:
        now = self._clock()
        evaluating = isinstance(event, EvaluationProgress)
        if not evaluating and (self._first is None or event.step < self._first[1]):
            self._first = (now, event.step)
        done = int(BAR_WIDTH * event.step / max(event.total, 1))
        text = f"  {'█' * done}{'░' * (BAR_WIDTH - done)} {event.step}/{event.total}"
        if not evaluating and self._first is not None:
            eta = eta_seconds(self._first, (now, event.step), event.total)
            text += f"  {format_duration(now - self._stage_start)} elapsed" + (
                f", ~{format_duration(eta)} left" if eta is not None else "")
        if self.loss is not None:
            text += f"  loss {self.loss:.4f}"
        if event.message:
            text += f"  {event.message}"
        print("\r\033[K" + text, file=self.stream, end="", flush=True)
        self._bar_shown = True

    def consume(self, events: Iterable[object]) -> Any:
        """Print events; return the Finished result, or None when the run was cancelled."""
        for event in events:
            if isinstance(event, StageStarted):
                self._stage_start, self._first = self._clock(), None
                self._line(f"[{event.name}] {event.detail}")
            elif isinstance(event, LayerDone):
                self._line(f"  {event.change.technique:<9} {event.change.name}: {event.change.detail}")
            elif isinstance(event, Warning):  # shown even when quiet
                self._clear_bar()
                print(f"warning: {event.message}", file=self.stream)
            elif isinstance(event, Metric):
                if event.name == "train/loss":
                    self.loss = event.value
                elif not event.name.startswith("size/"):
                    self._line(f"  step {event.step:>5}  {event.name:<14} {event.value:.4f}")
            elif isinstance(event, Progress) and self.tty and not self.quiet:
                self._bar(event)
            elif isinstance(event, RunCancelled):
                print(("\n" if self._bar_shown else "") + f"studio: {event.detail}", file=self.stream)
                return None
            elif isinstance(event, Finished):
                if self._bar_shown:
                    print(file=self.stream, flush=True)
                return event.result
        return None


BAR_WIDTH = 30
