"""What the CLI prints (and the window may reuse): the drop table, size parsing and plan verification."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from studio.core.base.errors import StudioError
from studio.core.pipelines.sensitivity.result import SensitivityResult
from studio.core.base.units import format_bytes, format_count, format_flops

if TYPE_CHECKING:
    from studio.core.data.dataset import Dataset
    from studio.core.model.loaded_model import LoadedModel
    from studio.core.pipelines.sensitivity.spec import FittedPlan

_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 2 ** 10, "mib": 2 ** 20, "gib": 2 ** 30}


def parse_size(text: str) -> float:
    """'2MB' → 2e6 (decimal, as sizes are shown), '512 KiB' → 524288."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if not match or unit not in _UNITS:
        raise StudioError(f"Size {text!r} is not understood; write e.g. 2MB, 512KB or 1.5GiB.")
    return float(match.group(1)) * _UNITS[unit]


def drop_table(result: SensitivityResult) -> str:
    """Layers × settings, each cell the metric drop in points (— where the setting does not apply)."""
    labels = [s.label for s in result.settings] + (["int8 but this"] if result.inverse else [])
    inverse = {c.layer: c for c in result.inverse}
    width = max([len(n) for n in result.layers] + [5])
    lines = [f"{result.model}: {result.metric} {result.baseline:.4f} on {result.samples} samples; "
             f"drop in points (baseline − value) × 100",
             " " * width + "  " + "  ".join(f"{label:>10}" for label in labels)]
    for name in result.layers:
        cells = list(result.row(name)) + ([inverse[name]] if name in inverse else [])
        text = ["—" if not c.ok else f"{100 * c.drop:+.2f}" for c in cells]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{t:>10}" for t in text))
    return "\n".join(lines)


def fitted_summary(fitted: FittedPlan, before: dict[str, int]) -> dict[str, Any]:
    return {"solver": fitted.solver, "met": fitted.met, "layers_changed": len(fitted.choices),
            "predicted_drop": fitted.predicted_drop,
            "predicted": {"bytes": fitted.predicted_bytes, "params": fitted.predicted_params,
                          "flops": fitted.predicted_flops},
            "original": before, "choices": [list(c) for c in fitted.choices]}


def summary_text(summary: dict[str, Any]) -> str:
    p, o = summary["predicted"], summary["original"]
    lines = [f"{summary['solver']}: {summary['layers_changed']} layer(s) changed; target "
             f"{'met' if summary['met'] else 'NOT met'} by the prediction",
             f"  predicted drop {100 * summary['predicted_drop']:.2f} points; size {format_bytes(o['bytes'])} → "
             f"{format_bytes(p['bytes'])}, params {format_count(o['params'])} → {format_count(p['params'])}, "
             f"{format_flops(o['flops'])} → {format_flops(p['flops'])}"]
    if "measured_drop" in summary:
        lines.append(f"  measured drop {100 * summary['measured_drop']:.2f} points "
                     f"({summary['metric']} {summary['measured_value']:.4f} vs {summary['baseline']:.4f}); "
                     f"measured size {format_bytes(summary['measured_bytes'])}")
    return "\n".join(lines)


def verify(loaded: LoadedModel, dataset: Dataset, fitted: FittedPlan, samples: int) -> dict[str, Any]:
    """Apply the plan with the ordinary compress pipeline and measure the drop on the sweep's samples."""
    import torch

    from studio.core.pipelines.compress import compress
    from studio.core.base.events import Finished
    from studio.core.pipelines.sensitivity.engine import Scorer, forward_all, sample_batches

    batches, labels = sample_batches(dataset, samples)
    compressed = next(e.result for e in compress(loaded, fitted.plan, batches=[]) if isinstance(e, Finished)) \
        if fitted.plan.rules else None
    reference = forward_all(loaded.module, batches)
    scorer = Scorer.from_reference(reference, labels)
    baseline = scorer.score(reference)
    with torch.inference_mode():
        value = scorer.score(forward_all(compressed.compressed, batches)) if compressed else baseline
    after = compressed.report.after.bytes if compressed else None
    return {"metric": scorer.metric, "baseline": baseline, "measured_value": value,
            "measured_drop": baseline - value, "measured_bytes": after if after is not None else math.nan}
