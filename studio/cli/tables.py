"""The CLI's text: the layer table of `studio inspect` (the window shows the same tree) and the
compression and export reports, printed from the rows the window shows (studio.core.report)."""

from __future__ import annotations

from studio.core.model.loaded_model import LoadedModel
from studio.core.model.model_tree import ModelTree
from studio.core.base.units import clip, format_bytes, format_count, format_flops, format_percent
from studio.core.report.compression import CompressionReport
from studio.core.report.export import ExportReport
from studio.core.report.export_rows import (CANDIDATE_COLUMNS, LATENCY_COLUMNS, candidate_rows, file_line, latency_rows,
                                            not_faster_message, slower_message, speed_verdict_text, speedup_text,
                                            verification_rows)
from studio.core.report.rows import compare_rows, headline, latency_is_simulated, speed, subline

_COLUMNS = (("Layer", 44, "<"), ("Type", 22, "<"), ("Params", 9, ">"), ("Share", 7, ">"),
            ("Size", 9, ">"), ("FLOPs", 13, ">"), ("Output", 18, "<"))


def _row(cells: tuple[str, ...]) -> str:
    return "  ".join(f"{clip(c, w):{a}{w}}" for c, (_, w, a) in zip(cells, _COLUMNS)).rstrip()


def _zeros_line(tree: ModelTree) -> str:
    """A weightless model (meta device) has no values: its zeros are unknown, not 0."""
    root = tree.root
    if root.zero_params is None or root.sparsity is None:
        return "Zeros   unknown: the model has no weights (built from its config), so none were counted"
    return f"Zeros   {root.zero_params:,} parameters are exactly zero ({format_percent(root.sparsity)})"


def layer_table(loaded: LoadedModel, tree: ModelTree, max_depth: int | None = None) -> str:
    lines = [
        f"Model   {loaded.name}  ({loaded.kind}, {loaded.source})",
        f"Input   {tree.input_spec}",
        f"Total   {format_count(tree.total_params)} params ({tree.total_params:,}) · "
        f"{format_bytes(tree.total_bytes)} · {format_flops(tree.total_flops)} · {len(tree)} modules",
        _zeros_line(tree),
    ]
    lines += [f"Note    {note}" for note in tree.notes]
    lines += ["", _row(tuple(name for name, _, _ in _COLUMNS))]
    lines.append("  ".join("-" * w for _, w, _ in _COLUMNS))
    for node in tree.nodes():
        if max_depth is not None and node.depth > max_depth:
            continue
        label = "  " * node.depth + node.short_name + (" *" if node.shared else "")
        lines.append(_row((label, node.type, format_count(node.total_params), format_percent(node.share),
                           format_bytes(node.bytes), format_flops(node.flops), node.output_shape)))
    if any(node.shared for node in tree.nodes()):
        lines.append("\n* shares (ties) parameters with another layer; each parameter is counted once.")
    return "\n".join(lines)


def _columns(rows: list[tuple[str, ...]], left: int = 1) -> list[str]:
    """Aligned text columns: the first `left` left-aligned, the rest right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in rows]


def changes_line(report: CompressionReport) -> str:
    """What the plan did, counted per layer and technique: applied; applied but left as it was (e.g.
    a rank that saves nothing, a warning below); matched by a pattern rule its technique cannot take
    (left out before the run, the warning printed at validation)."""
    pattern = len(report.pattern_skips)
    return (f"{len(report.changed_layers)} layer change(s), {len(report.unchanged_layers)} left unchanged by their "
            f"technique, {pattern} matched by a pattern but skipped (the technique cannot take them)")


def compression_summary(report: CompressionReport) -> str:
    """The compare rows the window shows, as text (the CLI's default output)."""
    lines = [headline(report), ""]
    lines += _columns([("", "original", "compressed", "change")]
                      + [(r.metric, r.original, r.compressed, r.change) for r in compare_rows(report)])
    latency = getattr(report, "latency", None)
    if latency is not None:
        lines.append(f"speed: {speed(report)} ({latency.speedup:.2f}×, 95 % interval "
                     f"{latency.speedup_low:.2f}–{latency.speedup_high:.2f}, {latency.runs} interleaved runs)")
    if latency_is_simulated(report):
        lines.append("note: quantization is simulated in PyTorch (slower than float); `studio export` measures "
                     "the real runtime's latency")
    lines.append(subline(report))
    lines.append(changes_line(report))
    lines += [f"warning: {w}" for w in report.warnings]
    return "\n".join(lines)


def export_summary(report: ExportReport) -> str:
    """The export report as the CLI prints it: the rows the window's export panel shows."""
    warning = slower_message(report) if report.slower_than_fp32 else not_faster_message(report)
    lines = (["⚠ " + warning, ""] if warning else []) + [file_line(report)]
    lines.append("verified on held-out inputs: " + ", ".join(f"{label.lower()} {text}"
                                                           for label, text in verification_rows(report)[:5]))
    candidates = candidate_rows(report)
    if candidates:
        lines.append("int8 candidates (verified on held-out data, timed next to the fp32 file):")
        lines += ["  " + line for line in _columns([tuple(c.replace("\n", " ") for c in CANDIDATE_COLUMNS)] + candidates)]
        lines.append(f"choice: {report.choice}")
        if report.float_layers_rule:
            lines.append(f"float layers tried: {report.float_layers_rule}")
    columns = tuple(c.replace("\n", " ") for c in LATENCY_COLUMNS)
    lines.append("batch-1 latency:")
    lines += ["  " + line for line in _columns([("", *columns)] + [(label, *cells)
                                                                   for label, cells in latency_rows(report)])]
    lines.append(speedup_text(report)
                 + ("  ⚠ SLOWER THAN FP32 IN THIS RUNTIME" if report.slower_than_fp32 else "")
                 + ("  ⚠ slower than the uncompressed model" if report.slower_than_uncompressed else ""))
    if speed_verdict_text(report):
        lines.append(speed_verdict_text(report))
    return "\n".join(lines)
