"""Between the sensitivity table and the plan: which swept settings the current plan uses,
the drop the table predicts for it, the tree column's marks, and the compare view's
"predicted vs measured" line. Plain functions over plain data (no widgets), so the
window's pieces only render their results."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from studio.core.base.units import format_bytes, format_count

if TYPE_CHECKING:
    from torch import nn

    from studio.core.plan import CompressionPlan
    from studio.core.pipelines.sensitivity import SensitivityResult, SweepSetting
    from studio.core.techniques.base import TechniqueConfig


@dataclass(frozen=True)
class SensitivityMark:
    """One row of the tree's Sensitivity column (duck-typed by the tree model)."""

    text: str
    value: float  # sorts the column
    colour: Any  # QColor | None
    tooltip: str


@dataclass(frozen=True)
class Prediction:
    """What the sensitivity table says the current plan will do (additive over layers)."""

    metric: str
    drop: float  # nan when some planned layer uses a setting the sweep did not measure
    layers: int  # planned layers whose setting the sweep measured
    unmeasured: tuple[str, ...]
    bytes: int | None = None  # projected size of the plan (the what-if budget), when known
    params: int | None = None
    source: str = "plan"  # "fit" right after a fit to a target


def plan_for_setting(plan: CompressionPlan, layer: str, setting: SweepSetting | None,
                     module: nn.Module | None = None) -> CompressionPlan:
    """The layer's own entry becomes exactly `setting` (None: nothing); other layers keep theirs."""
    from studio.core.plan.editing import clear_layers, mark_layers

    plan = clear_layers(plan, [layer])
    from studio.core.pipelines.sensitivity.settings import layer_configs

    for key, config in (layer_configs(setting, module) if setting is not None else {}).items():
        plan = mark_layers(plan, [layer], key, config)
    return plan


def plan_choices(plan: CompressionPlan, module: nn.Module, result: SensitivityResult,
                 configs: dict[tuple[str, str], dict[str, TechniqueConfig]] | None = None,
                 ) -> tuple[dict[str, set[str]], tuple[str, ...]]:
    """Per swept layer, the labels of the settings the plan gives it, and the planned swept
    layers whose configs match no measured setting. `configs`: (setting label, layer) → its
    configs, kept by the caller across plan edits of the same table and model."""
    from studio.core.pipelines.sensitivity.settings import layer_configs
    from studio.core.plan.resolve import resolve_with_problems

    assignments, _ = resolve_with_problems(plan, module)
    planned: dict[str, dict[str, Any]] = {}
    for key, layers in assignments.items():
        for name, config in layers.items():
            planned.setdefault(name, {})[key] = config
    modules = dict(module.named_modules())
    cache = {} if configs is None else configs
    chosen: dict[str, set[str]] = {}
    unmeasured = []
    swept = set(result.layers)
    for name, given in planned.items():
        if name not in swept:
            continue
        measured = {}
        for s in result.settings:
            if (s.label, name) not in cache:
                cache[s.label, name] = layer_configs(s, modules.get(name))
            measured[s.label] = cache[s.label, name]
        labels = {label for label, wanted in measured.items()
                  if wanted and all(given.get(key) == config for key, config in wanted.items())}
        covered = {key for label in labels for key in measured[label]}
        if labels:
            chosen[name] = labels
        if set(given) - covered:
            unmeasured.append(name)
    return chosen, tuple(unmeasured)


def predict(result: SensitivityResult, chosen: dict[str, set[str]], unmeasured: tuple[str, ...]) -> Prediction:
    """Sum of the chosen cells' drops: the table's first-order estimate of the whole plan."""
    drops = []
    for layer, labels in chosen.items():
        for label in labels:
            cell = result.cell(layer, label)
            drops.append(cell.drop if cell is not None and cell.ok else math.nan)
    drop = math.nan if unmeasured or any(math.isnan(d) for d in drops) else sum(drops)
    return Prediction(result.metric, drop, len(chosen), unmeasured)


def reference_label(result: SensitivityResult) -> str:
    """The tree column's default setting: the middle one of the first technique swept."""
    if not result.settings:
        return ""
    first = [s for s in result.settings if s.technique == result.settings[0].technique]
    return first[len(first) // 2].label


def tree_marks(result: SensitivityResult, reference: str, chosen: dict[str, set[str]],
               colour: Any, fmt: Any) -> dict[str, SensitivityMark]:
    """Drop at the reference setting per layer (+ the plan's predicted drop where planned).
    `colour(drop)` and `fmt(drop, unit)` come from the heatmap so both read alike."""
    marks = {}
    for layer in result.layers:
        cell = result.cell(layer, reference)
        if cell is None:
            continue
        text = fmt(cell.drop, True) if cell.ok else "n/a"
        planned = [result.cell(layer, label) for label in sorted(chosen.get(layer, ()))]
        planned_ok = [c for c in planned if c is not None and c.ok]
        if planned_ok:
            text += f" · plan {fmt(sum(c.drop for c in planned_ok), True)}"
        lines = [f"<b>{layer}</b> — drop in {result.metric} with one change to this layer only:"]
        lines += [f"{'▸ ' if c.setting in chosen.get(layer, ()) else ''}{c.setting}: "
                  f"{fmt(c.drop, True) if c.ok else 'n/a'}" for c in result.row(layer)]
        lines.append(f"<i>Column: drop at {reference}; '▸' marks the plan's settings.</i>")
        marks[layer] = SensitivityMark(text, cell.drop if cell.ok else math.inf,
                                       colour(cell.drop) if cell.ok else None, "<br>".join(lines))
    return marks


def _measured_drop(metric: str, report: dict[str, Any]) -> float | None:
    before, after = report.get("before") or {}, report.get("after") or {}
    if metric == "accuracy" and before.get("accuracy") is not None and after.get("accuracy") is not None:
        return float(before["accuracy"]) - float(after["accuracy"])
    agreement = (report.get("fidelity") or {}).get("top1_agreement")
    if metric in ("top1_agreement", "agreement") and agreement is not None:
        return 1.0 - float(agreement)
    return None


def predicted_vs_measured(prediction: Prediction | None, report: dict[str, Any]) -> str:
    """One rich-text line for the compare view; empty when there is nothing to compare."""
    if prediction is None or not report or math.isnan(prediction.drop):
        return ""
    scale, unit = (100.0, " pp") if prediction.metric in ("accuracy", "top1_agreement", "agreement") else (1.0, "")
    measured = _measured_drop(prediction.metric, report)
    parts = [f"<b>Sensitivity prediction</b> ({prediction.layers} layer(s)): {prediction.metric} drop "
             f"predicted {scale * prediction.drop:.1f}{unit}"]
    if measured is not None:
        parts[-1] += f", measured <b>{scale * measured:.1f}{unit}</b>"
    after = report.get("after") or {}
    if prediction.bytes is not None and after.get("bytes"):
        parts.append(f"size predicted {format_bytes(prediction.bytes)}, measured <b>{format_bytes(after['bytes'])}</b>")
    if prediction.params is not None and after.get("params"):
        parts.append(f"params predicted {format_count(prediction.params)}, "
                     f"measured <b>{format_count(after['params'])}</b>")
    epochs = ((report.get("settings") or {}).get("finetune") or {}).get("epochs")
    if epochs:
        parts.append("measured after fine-tuning, which usually wins some of the drop back")
    return " · ".join(parts)
