"""Typed sensitivity results: a layers x settings table of metric drops and savings.

The CLI, the cache and the window all read this one structure; its JSON form is the typed
results' one (`studio.core.report.serial`): a metric that could not be measured (NaN) is null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from studio.core.report.serial import NAN_AS_NONE, Record

VERSION = 1  # the "version" key of a saved result


@dataclass(frozen=True)
class SweepSetting(Record):
    """One heatmap column: a single-layer change of one technique."""

    technique: str  # "prune" | "lowrank" | "quantize"
    label: str  # unique short column label, e.g. "prune 50%", "int8"
    rule: dict  # recipe rule body for ONE layer, e.g. {"prune": {"mode": "unstructured", "amount": 0.5}}


@dataclass(frozen=True)
class SensitivityCell(Record):
    """The measured effect of one setting on one layer."""

    layer: str  # qualified module name
    setting: str  # SweepSetting.label
    # baseline metric minus metric with this change (positive = worse); NaN where it does not apply
    drop: float = field(default=math.nan, metadata=NAN_AS_NONE)
    value: float = field(default=math.nan, metadata=NAN_AS_NONE)  # the metric measured with the change
    saved_params: int = 0
    saved_bytes: int = 0
    saved_flops: int = 0
    error: str | None = None  # why this cell does not apply; then drop is nan
    saved_nonzero: int = 0  # nonzero parameters removed (what unstructured pruning saves)

    @property
    def ok(self) -> bool:
        return self.error is None and not math.isnan(self.drop)


INVERSE_SETTING = "all int8 but this"


@dataclass(frozen=True)
class SensitivityResult(Record):
    """A finished (or resumed) sweep: every cell of layers x settings plus the inverse quantization view."""

    model: str
    metric: str
    baseline: float = field(metadata=NAN_AS_NONE)
    samples: int
    settings: tuple[SweepSetting, ...]
    layers: tuple[str, ...]
    cells: tuple[SensitivityCell, ...]
    inverse: tuple[SensitivityCell, ...] = ()  # everything int8 except `layer`; drop relative to the baseline
    all_int8: float = field(default=math.nan, metadata=NAN_AS_NONE)  # metric with every layer int8
    _index: dict = field(default_factory=dict, init=False, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        self._index.clear()
        self._index.update({(c.layer, c.setting): c for c in self.cells})

    def cell(self, layer: str, setting: str) -> SensitivityCell | None:
        return self._index.get((layer, setting))

    def setting(self, label: str) -> SweepSetting | None:
        return next((s for s in self.settings if s.label == label), None)

    def row(self, layer: str) -> tuple[SensitivityCell, ...]:
        return tuple(c for s in self.settings if (c := self.cell(layer, s.label)) is not None)

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, **super().to_dict()}
