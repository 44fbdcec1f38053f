"""Events a sensitivity sweep streams (besides studio.core.base.events.Finished / RunCancelled / Progress)."""

from __future__ import annotations

from dataclasses import dataclass

from studio.core.pipelines.sensitivity.result import SensitivityCell, SweepSetting


@dataclass(frozen=True)
class SweepPlanned:
    """Once, before the first cell: the table's shape so a view can lay it out."""

    settings: tuple[SweepSetting, ...]
    layers: tuple[str, ...]
    baseline: float
    metric: str


@dataclass(frozen=True)
class CellDone:
    """One measured (or cached) cell; `done` of `total` cells are finished."""

    cell: SensitivityCell
    done: int
    total: int
