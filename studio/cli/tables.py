"""Plain-text layer table for `studio inspect` (the GUI shows the same tree)."""

from __future__ import annotations

from studio.core.model.loaded_model import LoadedModel
from studio.core.model.model_tree import ModelTree
from studio.core.report.rows import latency_is_simulated
from studio.core.base.units import clip, format_bytes, format_count, format_flops, format_percent, speed_text

_COLUMNS = (("Layer", 44, "<"), ("Type", 22, "<"), ("Params", 9, ">"), ("Share", 7, ">"),
            ("Size", 9, ">"), ("FLOPs", 13, ">"), ("Output", 18, "<"))


def _row(cells: tuple[str, ...]) -> str:
    return "  ".join(f"{clip(c, w):{a}{w}}" for c, (_, w, a) in zip(cells, _COLUMNS)).rstrip()


def layer_table(loaded: LoadedModel, tree: ModelTree, max_depth: int | None = None) -> str:
    lines = [
        f"Model   {loaded.name}  ({loaded.kind}, {loaded.source})",
        f"Input   {tree.input_spec}",
        f"Total   {format_count(tree.total_params)} params ({tree.total_params:,}) · "
        f"{format_bytes(tree.total_bytes)} · {format_flops(tree.total_flops)} · {len(tree)} modules",
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


def compression_summary(report: dict) -> str:
    """Before/after table of a compression report (the CLI's default output)."""
    before, after = report["before"], report["after"]
    rows = [("params", format_count), ("nonzero_params", format_count), ("bytes", format_bytes),
            ("compressed_bytes", format_bytes), ("flops", format_flops)]
    lines = [f"{'':18}{'before':>14}{'after':>14}{'ratio':>9}"]
    for key, fmt in rows:
        ratio = after[key] / before[key] if before[key] else float("nan")
        lines.append(f"{key:18}{fmt(before[key]):>14}{fmt(after[key]):>14}{ratio:>8.2f}x")
    for key, fmt in (("accuracy", format_percent), ("loss", "{:.4f}".format), ("latency_ms", "{:.3f} ms".format)):
        if before.get(key) is not None and after.get(key) is not None:  # a run with data (studio compress --data)
            lines.append(f"{key:18}{fmt(before[key]):>14}{fmt(after[key]):>14}")
    timing = report.get("latency")
    if timing:
        lines.append(f"speed: {speed_text(timing)} ({timing['speedup']:.2f}×, 95 % interval "
                     f"{timing['speedup_low']:.2f}–{timing['speedup_high']:.2f}, {timing['runs']} interleaved runs)")
    if latency_is_simulated(report):
        lines.append("note: quantization is simulated in PyTorch (slower than float); `studio export` measures "
                     "the real runtime's latency")
    fid = report["fidelity"]
    top1 = "n/a" if fid["top1_agreement"] is None else format_percent(fid["top1_agreement"])
    lines.append(f"\nfidelity vs original: max |diff| {fid['max_abs']:.4g}, cosine {fid['cosine']:.5f}, "
                 f"top-1 agreement {top1} ({fid['samples']} samples)")
    changed = [row for row in report["layers"] if not row["skipped"]]
    lines.append(f"{len(changed)} layer change(s), {len(report['layers']) - len(changed)} skipped")
    lines += [f"warning: {w}" for w in report.get("warnings", [])]
    return "\n".join(lines)


def export_summary(report: dict) -> str:
    """The export report as the CLI prints it."""
    v = report["verification"]
    lines = [f"{report['format']} {report['precision']}"
             + (f" ({report['int8_mode']})" if report.get("int8_mode") else "")
             + f" → {report['file']}  {format_bytes(report['file_bytes'])}",
             f"verified on {v['samples']} inputs: max |diff| {v['max_abs']:.4g}, cosine {v['cosine']:.5f}"
             + (f", top-1 agreement {format_percent(v['top1_agreement'])}" if v.get("top1_agreement") is not None else "")
             + (f", accuracy {format_percent(v['accuracy'])}" if v.get("accuracy") is not None else ""),
             f"{'batch-1 latency':22}{'runtime':>16}{'PyTorch':>16}{'uncompressed':>16}"]
    for threads, row in report["latency"].items():
        cells = [f"{row[k]['median_ms']:.3f} ms" for k in ("runtime", "pytorch", "pytorch_uncompressed")]
        lines.append(f"{threads.replace('_', ' '):22}" + "".join(f"{c:>16}" for c in cells))
    lines.append(f"speed-up vs PyTorch: {report['speedup_vs_pytorch']:.2f}x"
                 + ("  ⚠ slower than the uncompressed model" if report["slower_than_uncompressed"] else ""))
    return "\n".join(lines)
