"""Typed events yielded by core pipelines; the CLI, tests and the Qt adapter consume them.

Every event is a frozen dataclass of plain data (plus the result objects), so a front end
recognises it by type, never by parsing a message, and it can cross a process boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from studio.core.techniques.base import LayerChange

T = TypeVar("T")


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
class EvaluationProgress(Progress):
    """A pass over the validation data inside a stage (before, between or after training steps):
    a front end shows it as its own bar without an ETA for the stage. A Progress, so a consumer
    that only knows Progress keeps working."""


@dataclass(frozen=True)
class Warning:  # noqa: A001 - the event's natural name; never shadows builtins at import sites
    message: str


@dataclass(frozen=True)
class Finished(Generic[T]):
    """The job's result, the last event of a successful job (e.g. `Finished[RunResult]`)."""

    result: T


@dataclass(frozen=True)
class LayerDone:
    """One layer changed (or skipped) by a technique."""

    change: LayerChange


@dataclass(frozen=True)
class Metric:
    """One point of a live chart: `name` like 'train/loss', 'val/accuracy', 'size/bytes'."""

    step: int
    name: str
    value: float


@dataclass(frozen=True)
class RunCancelled:
    """The job stopped on request: its last event, delivered to the front end after a cancel.
    `detail` is a full sentence saying what had been done (shown verbatim)."""

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
