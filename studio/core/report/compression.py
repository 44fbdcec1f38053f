"""The compression report and the run report: what `compress` and `run` return, what a kept model
and a reopened folder carry (`LoadedModel.extras["report"]`) and what `report.json` / `studio
compress --json` hold (the field names below are those files' keys)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from studio.core.base.errors import StudioError
from studio.core.report.serial import OMIT_NONE, Record
from studio.core.techniques.base import LayerChange

RATIO_KEYS = ("params", "bytes", "compressed_bytes", "flops")


@dataclass(frozen=True)
class ModelFigures(Record):
    """One side of the comparison: measured figures, and the evaluation when a run had data."""

    params: int
    nonzero_params: int
    bytes: int
    compressed_bytes: int
    flops: int
    accuracy: float | None = field(default=None, metadata=OMIT_NONE)
    loss: float | None = field(default=None, metadata=OMIT_NONE)
    perplexity: float | None = field(default=None, metadata=OMIT_NONE)  # causal LMs on text: data, exp(loss)
    latency_ms: float | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class OutputFidelity(Record):
    """Compressed against original outputs; `kl` on the validation split of a run with data."""

    max_abs: float
    cosine: float
    top1_agreement: float | None
    samples: int
    kl: float | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class LayerRow(LayerChange, Record):
    """A `LayerChange` as the report shows it: its fields, then FLOPs and bytes before and after
    (bytes at the layer's real bit widths)."""

    flops_before: int | None = field(default=None, metadata=OMIT_NONE)
    flops_after: int | None = field(default=None, metadata=OMIT_NONE)
    bytes_before: int | None = field(default=None, metadata=OMIT_NONE)
    bytes_after: int | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class SpeedComparison(Record):
    """Interleaved batch-1 timing of both models with a bootstrap interval on the speed-up."""

    before_ms: float
    after_ms: float
    speedup: float
    speedup_low: float
    speedup_high: float
    runs: int
    same_speed: bool


@dataclass(frozen=True)
class HistoryPoint(Record):
    step: int
    name: str
    value: float


@dataclass(frozen=True)
class FinetuneSummary(Record):
    """What fine-tuning did; `best` holds the validation metrics of the weights kept."""

    resolved: dict[str, Any]
    metric: str
    start: dict[str, float]
    best: dict[str, float]
    best_step: int
    steps: int
    improved: bool
    stopped: str
    backoffs: int
    final_lr: float
    seconds: float
    seconds_per_epoch: float
    kept: str = "best"


@dataclass(frozen=True)
class PatternSkip(Record):
    """A layer a pattern rule (`*`, glob, regex) matched but its technique cannot take: left out
    of the run, not an error (the run's one warning per rule and technique names it too)."""

    layer: str
    technique: str
    reason: str


def ratios(before: ModelFigures, after: ModelFigures) -> dict[str, float | None]:
    return {k: (getattr(after, k) / getattr(before, k) if getattr(before, k) else None) for k in RATIO_KEYS}


@dataclass(frozen=True)
class CompressionReport(Record):
    model: str
    source: str
    input_spec: str
    recipe: dict[str, Any]
    before: ModelFigures
    after: ModelFigures
    ratios: dict[str, float | None]
    fidelity: OutputFidelity
    layers: tuple[LayerRow, ...] = ()
    warnings: tuple[str, ...] = ()
    timing: dict[str, float] = field(default_factory=dict)
    pattern_skips: tuple[PatternSkip, ...] = ()  # reports written before it was recorded load with none

    @property
    def unchanged_layers(self) -> tuple[LayerRow, ...]:
        """Layers a technique was applied to and left as they were (e.g. a rank that saves nothing)."""
        return tuple(row for row in self.layers if row.skipped)

    @property
    def changed_layers(self) -> tuple[LayerRow, ...]:
        return tuple(row for row in self.layers if not row.skipped)

    def with_after(self, after: ModelFigures, fidelity: OutputFidelity | None = None) -> CompressionReport:
        """The report of other weights of the same structure (fine-tuned): ratios follow."""
        return replace(self, after=after, ratios=ratios(self.before, after), fidelity=fidelity or self.fidelity)


@dataclass(frozen=True)
class RunReport(CompressionReport):
    """A compression run: the compression report, evaluated before/after on the data (accuracy,
    loss, latency in `before`/`after`), and what fine-tuning did."""

    latency: SpeedComparison | None = None
    history: tuple[HistoryPoint, ...] = ()
    data: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    finetune: FinetuneSummary | None = field(default=None, metadata=OMIT_NONE)

    @classmethod
    def of(cls, report: CompressionReport, **run: Any) -> RunReport:
        """The compression report extended with what the run measured."""
        return cls(**{f.name: getattr(report, f.name) for f in fields(CompressionReport)}, **run)

    @property
    def finetune_epochs(self) -> int:
        return int((self.settings.get("finetune") or {}).get("epochs") or 0)


def read_report(path: str | Path) -> RunReport:
    """A compressed folder's `report.json`."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return RunReport.from_dict(data)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise StudioError(f"{path}: unreadable report ({exc}).") from exc
