"""The CLI's stderr: stage lines always, a progress bar with an ETA only on a terminal."""

from __future__ import annotations

import io

from studio.cli.terminal import TerminalProgress
from studio.core.base.events import EvaluationProgress, Finished, Progress, StageStarted, Warning
from studio.core.base.units import eta_seconds, format_duration


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def events(clock: Clock):
    yield StageStarted("measure", "before and after")
    for step in range(1, 5):
        clock.now += 2.0  # 2 s per step
        yield Progress(step, 10, "layers")
    yield EvaluationProgress(3, 7, "evaluating")
    yield Warning("slow layer")
    yield Finished("result")


def test_bar_with_eta_on_a_terminal():
    clock, stream = Clock(), Tty()
    assert TerminalProgress(stream=stream, clock=clock).consume(events(clock)) == "result"
    out = stream.getvalue()
    assert "[measure] before and after" in out
    assert "4/10" in out and "0:06 elapsed" in out
    assert "~0:12 left" in out  # 6 steps at 2 s each, from the rate measured since the first step
    assert "3/7" in out and "3/7  evaluating" in out  # an evaluation pass: a bar, no ETA of its own
    assert "\r\033[Kwarning: slow layer" in out and out.endswith("\n")


def test_no_bar_for_scripts_or_json():
    for stream, quiet in ((io.StringIO(), False), (Tty(), True)):
        clock = Clock()
        TerminalProgress(quiet=quiet, stream=stream, clock=clock).consume(events(clock))
        out = stream.getvalue()
        assert "░" not in out and "left" not in out
        assert "warning: slow layer" in out  # warnings always reach stderr
        assert ("[measure]" in out) != quiet


def test_eta_and_duration_formulas():
    assert eta_seconds((0.0, 1), (10.0, 6), 26) == 40.0  # 5 steps in 10 s, 20 to go
    assert eta_seconds((0.0, 3), (0.0, 3), 10) is None
    assert [format_duration(s) for s in (7, 725, 3723, -1)] == ["0:07", "12:05", "1:02:03", "0:00"]
