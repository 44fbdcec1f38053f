"""Typed events yielded by core pipelines; the CLI, tests and the Qt adapter consume them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StageStarted:
    name: str
    detail: str = ""


@dataclass(frozen=True)
class Progress:
    step: int
    total: int
    message: str = ""


@dataclass(frozen=True)
class Warning:  # noqa: A001 - the event's natural name; never shadows builtins at import sites
    message: str


@dataclass(frozen=True)
class Finished:
    result: Any


@dataclass(frozen=True)
class LayerDone:
    """One layer changed (or skipped) by a technique; `change` is a techniques.base.LayerChange."""

    change: Any


@dataclass(frozen=True)
class Metric:
    """One point of a live chart: `name` like 'train/loss', 'val/accuracy', 'size/bytes'."""

    step: int
    name: str
    value: float


@dataclass(frozen=True)
class RunCancelled:
    """The run stopped on request; `detail` says what had been done."""

    stage: str
    detail: str


@dataclass(frozen=True)
class Note:
    """Something a run decided that the user should know (the learning rate it chose and why,
    an early stop, the checkpoint it kept); shown in the log, not a problem."""

    message: str


@dataclass(frozen=True)
class LrProbe:
    """One step of a learning-rate range test: the lr tried, the loss, and its smoothed value."""

    step: int
    lr: float
    loss: float
    smoothed: float
