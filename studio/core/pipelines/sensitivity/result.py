"""Typed sensitivity results: a layers x settings table of metric drops and savings.

The CLI, the cache and the window all read this one structure (to_dict/from_dict round-trip).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SweepSetting:
    """One heatmap column: a single-layer change of one technique."""

    technique: str  # "prune" | "lowrank" | "quantize"
    label: str  # unique short column label, e.g. "prune 50%", "int8"
    rule: dict  # recipe rule body for ONE layer, e.g. {"prune": {"mode": "unstructured", "amount": 0.5}}

    def to_dict(self) -> dict:
        return {"technique": self.technique, "label": self.label, "rule": self.rule}

    @classmethod
    def from_dict(cls, data: dict) -> SweepSetting:
        return cls(technique=str(data["technique"]), label=str(data["label"]), rule=dict(data["rule"]))


def _num(value: float) -> Any:
    """JSON has no NaN; None stands for it."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _float(value: Any) -> float:
    return float("nan") if value is None else float(value)


@dataclass(frozen=True)
class SensitivityCell:
    """The measured effect of one setting on one layer."""

    layer: str  # qualified module name
    setting: str  # SweepSetting.label
    drop: float  # baseline metric minus metric with this change (positive = worse)
    value: float  # the metric measured with the change
    saved_params: int
    saved_bytes: int
    saved_flops: int
    error: str | None = None  # why this cell does not apply; then drop is nan
    saved_nonzero: int = 0  # nonzero parameters removed (what unstructured pruning saves)

    @property
    def ok(self) -> bool:
        return self.error is None and not math.isnan(self.drop)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["drop"] = _num(self.drop)
        data["value"] = _num(self.value)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> SensitivityCell:
        return cls(
            layer=str(data["layer"]),
            setting=str(data["setting"]),
            drop=_float(data.get("drop")),
            value=_float(data.get("value")),
            saved_params=int(data.get("saved_params", 0)),
            saved_bytes=int(data.get("saved_bytes", 0)),
            saved_flops=int(data.get("saved_flops", 0)),
            error=data.get("error"),
            saved_nonzero=int(data.get("saved_nonzero", 0)),
        )


INVERSE_SETTING = "all int8 but this"


@dataclass(frozen=True)
class SensitivityResult:
    """A finished (or resumed) sweep: every cell of layers x settings plus the inverse quantization view."""

    model: str
    metric: str
    baseline: float
    samples: int
    settings: tuple[SweepSetting, ...]
    layers: tuple[str, ...]
    cells: tuple[SensitivityCell, ...]
    inverse: tuple[SensitivityCell, ...] = ()  # everything int8 except `layer`; drop relative to the baseline
    all_int8: float = float("nan")  # metric with every layer int8 (reference for the inverse view)
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

    def to_dict(self) -> dict:
        return {
            "version": 1,
            "model": self.model,
            "metric": self.metric,
            "baseline": _num(self.baseline),
            "samples": self.samples,
            "settings": [s.to_dict() for s in self.settings],
            "layers": list(self.layers),
            "cells": [c.to_dict() for c in self.cells],
            "inverse": [c.to_dict() for c in self.inverse],
            "all_int8": _num(self.all_int8),
        }

    @classmethod
    def from_dict(cls, data: dict) -> SensitivityResult:
        return cls(
            model=str(data["model"]),
            metric=str(data["metric"]),
            baseline=_float(data.get("baseline")),
            samples=int(data["samples"]),
            settings=tuple(SweepSetting.from_dict(s) for s in data["settings"]),
            layers=tuple(str(x) for x in data["layers"]),
            cells=tuple(SensitivityCell.from_dict(c) for c in data["cells"]),
            inverse=tuple(SensitivityCell.from_dict(c) for c in data.get("inverse", ())),
            all_int8=_float(data.get("all_int8")),
        )
