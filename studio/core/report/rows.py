"""The rows both front ends show for a compression (or run) report, computed once here: the
headline, the before/after figures, the per-layer bars. The CLI prints them as text, the
window's table models and chart read them; neither computes a figure of its own."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from studio.core.base.units import format_bytes, format_count, format_flops, format_percent, speed_text
from studio.core.report.compression import CompressionReport, LayerRow, RunReport

DASH, MINUS = "—", "−"
MAX_BARS = 30  # more bars than this turn into a tangle; the rest are summed in one bar


def format_ms(value: float | None) -> str:
    """Milliseconds with the digits that mean something at that size; a dash when not measured."""
    if value is None:
        return DASH
    return f"{value:.3f} ms" if value < 10 else f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


@dataclass(frozen=True)
class Figure:
    label: str
    key: str                       # the field of `ModelFigures`
    kind: str                      # "pp": a fraction compared in percentage points
    text: Callable[[float], str]
    lower_is_better: bool
    tolerance: float = 1e-3        # a relative change under this is "the same"


FIGURES: tuple[Figure, ...] = (
    Figure("Params", "params", "", format_count, True),
    Figure("Non-zero params", "nonzero_params", "", format_count, True),
    Figure("Size", "bytes", "", format_bytes, True),
    Figure("Compressed size (zlib)", "compressed_bytes", "", format_bytes, True),
    Figure("FLOPs", "flops", "", format_flops, True),
    Figure("Accuracy", "accuracy", "pp", format_percent, False),
    Figure("Loss", "loss", "", lambda v: f"{v:.4g}", True),
    Figure("Perplexity", "perplexity", "", lambda v: f"{v:.4g}", True),
    Figure("Latency (ms)", "latency_ms", "", format_ms, True, 0.05),  # timing noise: under 5% is "same"
)
FIDELITY: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("Top-1 agreement", "top1_agreement", format_percent),
    ("Cosine", "cosine", lambda v: f"{v:.4f}"),
    ("Max |diff|", "max_abs", lambda v: f"{v:.3g}"),
    ("KL", "kl", lambda v: f"{v:.4g}"),
)


@dataclass(frozen=True)
class CompareRow:
    metric: str
    original: str
    compressed: str
    change: str = ""
    verdict: int = 0  # +1 better, -1 worse, 0 same or not comparable
    tooltip: str = ""
    ratio: float | None = None  # compressed / original, for figures measured on both sides


def change_text(before: float, after: float, kind: str = "", tolerance: float = 1e-3) -> str:
    """'−62.0%' for a relative change, '67.3×' for a large growth, '−1.2 pp' for fractions."""
    if kind == "pp":
        diff = 100.0 * (after - before)
        return "±0 pp" if abs(diff) < 0.05 else f"{'+' if diff > 0 else MINUS}{abs(diff):.1f} pp"
    if before == 0:
        return DASH
    ratio = after / before
    if abs(ratio - 1) < tolerance:
        return "±0%"
    if ratio >= 2:
        return f"{ratio:.1f}×"
    return f"{'+' if ratio > 1 else MINUS}{format_percent(abs(ratio - 1))}"


def compare_rows(report: CompressionReport) -> list[CompareRow]:
    """Figures present on both sides, then output fidelity (compressed side only)."""
    rows = []
    for figure in FIGURES:
        b, a = getattr(report.before, figure.key), getattr(report.after, figure.key)
        if b is None or a is None:
            continue
        b, a = float(b), float(a)
        same = abs(a - b) < 5e-4 if figure.kind == "pp" else (b == a or (b != 0 and abs(a / b - 1) < figure.tolerance))
        verdict = 0 if same else (1 if (a < b) == figure.lower_is_better else -1)
        ratio = a / b if b else None
        rows.append(CompareRow(figure.label, figure.text(b), figure.text(a),
                               change_text(b, a, figure.kind, figure.tolerance), verdict,
                               f"{figure.label}: {b:g} → {a:g}" + (f" ({ratio:.3g}× the original)" if ratio else ""),
                               ratio))
    samples = report.fidelity.samples
    note = f"compressed vs original outputs on {samples} samples" if samples else "compressed vs original"
    for label, key, text in FIDELITY:
        value = getattr(report.fidelity, key)
        if value is not None:
            rows.append(CompareRow(label, DASH, text(float(value)), "", 0, f"{label}: {note}"))
    return rows


def latency_is_simulated(report: CompressionReport) -> bool:
    """The compressed model got slower in PyTorch because its quantization is simulated
    (quantize-dequantize around float math): the runtime's latency comes from an export."""
    before, after = report.before.latency_ms or 0, report.after.latency_ms or 0
    if not after > before > 0:
        return False
    from studio.core.techniques import all_techniques

    techniques = all_techniques()
    return any(getattr(techniques.get(row.technique), "simulated", False) for row in report.layers)


def speed(report: CompressionReport) -> str:
    """'same speed' / '1.4× faster' from the interleaved timing; '' when not timed."""
    latency = getattr(report, "latency", None)
    return speed_text(latency.to_dict() if latency is not None else None)


def headline(report: CompressionReport) -> str:
    """One line a reader takes away: '3.8× smaller · accuracy 99.1% → 98.7% · 1.9× fewer FLOPs'."""
    before, after = report.before, report.after
    parts = []

    def shrink(key: str) -> float | None:
        b, a = getattr(before, key), getattr(after, key)
        return b / a if b and a else None

    size, zipped = shrink("bytes"), shrink("compressed_bytes")
    if size and size >= 1.05:
        parts.append(f"{size:.1f}× smaller")
    elif zipped and zipped >= 1.05:
        parts.append(f"{zipped:.1f}× smaller zipped")
    elif size:
        parts.append("same size" if size > 0.95 else f"{1 / size:.1f}× larger")
    if before.accuracy is not None and after.accuracy is not None:
        parts.append(f"accuracy {format_percent(before.accuracy)} → {format_percent(after.accuracy)}")
    elif before.perplexity is not None and after.perplexity is not None:
        parts.append(f"perplexity {before.perplexity:.4g} → {after.perplexity:.4g}")
    elif report.fidelity.top1_agreement is not None:
        parts.append(f"{format_percent(report.fidelity.top1_agreement)} top-1 agreement")
    flops = shrink("flops")
    if flops and flops >= 1.05:
        parts.append(f"{flops:.1f}× fewer FLOPs")
    if speed(report):  # interleaved timing with an interval: noise reads "same speed"
        parts.append(speed(report))
    return " · ".join(parts) or "Compressed"


def subline(report: CompressionReport) -> str:
    """Where the figures come from: model, data, samples, fine-tuning, layers changed."""
    parts = [report.model or report.source]
    if isinstance(report, RunReport):
        if report.data:
            parts.append(f"evaluated on {report.data}")
    if report.fidelity.samples:
        parts.append(f"fidelity on {report.fidelity.samples} samples")
    epochs = report.finetune_epochs if isinstance(report, RunReport) else 0
    if epochs:
        parts.append(f"fine-tuned {epochs} epoch{'s' if epochs != 1 else ''}")
    if latency_is_simulated(report):
        parts.append("latency is PyTorch's with simulated quantization: export to measure the runtime")
    bars = per_layer(report.layers)
    if bars:
        parts.append(f"{sum(1 for bar in bars if not bar.skipped)} of {len(bars)} layer(s) changed")
    return " · ".join(p for p in parts if p)


@dataclass(frozen=True)
class LayerBar:
    """One layer of the chart: size before the first change and after the last one."""

    name: str
    techniques: tuple[str, ...]
    details: tuple[str, ...]
    skipped: bool
    params_before: float | None
    params_after: float | None
    bytes_before: float | None = None
    bytes_after: float | None = None

    def value(self, key: str, side: str) -> float:
        return float(getattr(self, f"{key}_{side}") or 0)


def per_layer(changes: tuple[LayerRow, ...] | list[LayerRow]) -> list[LayerBar]:
    """One entry per layer from the per-technique changes (a layer pruned, then quantized appears
    twice there)."""
    merged: dict[str, LayerBar] = {}
    for change in changes:
        detail = f"{change.technique}: {change.detail}"
        technique = () if change.skipped else (change.technique,)
        entry = merged.get(change.name)
        if entry is None:
            merged[change.name] = LayerBar(change.name, technique, (detail,), change.skipped, change.params_before,
                                           change.params_after, change.bytes_before, change.bytes_after)
            continue
        merged[change.name] = replace(
            entry, params_after=change.params_after, techniques=entry.techniques + technique,
            details=entry.details + (detail,), skipped=entry.skipped and change.skipped,
            bytes_after=change.bytes_after if change.bytes_after is not None else entry.bytes_after)
    return list(merged.values())


def top_layers(bars: list[LayerBar], key: str, limit: int = MAX_BARS) -> list[LayerBar]:
    """The `limit - 1` layers whose `key` changed most, in their order, then one entry summing the
    others (so the chart's total stays the report's)."""
    if len(bars) <= limit:
        return bars
    saving = [abs(bar.value(key, "before") - bar.value(key, "after")) for bar in bars]
    keep = set(sorted(range(len(bars)), key=lambda i: -saving[i])[:limit - 1])
    rest = [bar for i, bar in enumerate(bars) if i not in keep]
    before, after = (sum(bar.value(key, side) for bar in rest) for side in ("before", "after"))
    summed = LayerBar(f"{len(rest)} other layers", (), (f"{len(rest)} layers with smaller changes, summed",), False,
                      None, None, **{f"{key}_before": before, f"{key}_after": after})
    return [bar for i, bar in enumerate(bars) if i in keep] + [summed]


def layer_bars(report: CompressionReport | None) -> tuple[str, list[LayerBar]]:
    """("bytes" or "params", the bars): bytes at real bit widths when every layer has them."""
    bars = per_layer(report.layers) if report is not None else []
    key = "bytes" if bars and all(b.bytes_before is not None and b.bytes_after is not None for b in bars) else "params"
    return key, top_layers(bars, key)
