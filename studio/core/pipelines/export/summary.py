"""The export report as the CLI prints it; the candidate rows come from `candidates`, the
same rows the window's table shows."""

from __future__ import annotations

from studio.core.pipelines.export.candidates import CANDIDATE_COLUMNS, candidate_table
from studio.core.base.units import format_bytes, format_percent


def export_summary(report: dict) -> str:
    v = report["verification"]
    lines = []
    if report.get("slower_than_fp32"):
        from studio.core.pipelines.export.pipeline import slower_message

        lines += ["⚠ " + slower_message(report), ""]
    lines.append(f"{report['format']} {report['precision']}"
                 + (f" ({report['int8_mode']})" if report.get("int8_mode") else "")
                 + f" → {report['file']}  {format_bytes(report['file_bytes'])}"
                 + (f" ({report['size_vs_fp32']:.2f}× the fp32 file)" if report["precision"] != "fp32" else ""))
    lines.append(f"verified on {v['samples']} held-out inputs: max |diff| {v['max_abs']:.4g}, cosine {v['cosine']:.5f}"
                 + (f", top-1 agreement {format_percent(v['top1_agreement'])}" if v.get("top1_agreement") is not None else "")
                 + (f", accuracy {format_percent(v['accuracy'])} (n={v.get('labeled_samples', v['samples'])})"
                    if v.get("accuracy") is not None else ""))
    if report.get("candidates"):
        rows = [CANDIDATE_COLUMNS] + candidate_table(report)
        widths = [max(len(r[i]) for r in rows) for i in range(len(CANDIDATE_COLUMNS))]
        lines.append("int8 candidates (verified on held-out data, timed next to the fp32 file):")
        lines += ["  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                  for r in rows]
        lines.append(f"choice: {report['choice']}")
    lines.append(f"{'batch-1 latency':16}{'file':>12}{'fp32 file':>12}{'PyTorch':>12}{'uncompressed':>14}")
    for threads, row in report["latency"].items():
        cells = [f"{row[k]['median_ms']:.3f} ms" for k in ("runtime", "runtime_fp32", "pytorch")]
        lines.append(f"{threads.replace('_', ' '):16}" + "".join(f"{c:>12}" for c in cells)
                     + f"{row['pytorch_uncompressed']['median_ms']:.3f} ms".rjust(14))
    lines.append(f"speed-up vs the fp32 file: {report['speedup_vs_fp32']:.2f}x, vs PyTorch: "
                 f"{report['speedup_vs_pytorch']:.2f}x"
                 + ("  ⚠ SLOWER THAN FP32 IN THIS RUNTIME" if report.get("slower_than_fp32") else "")
                 + ("  ⚠ slower than the uncompressed model" if report["slower_than_uncompressed"] else ""))
    return "\n".join(lines)
