"""The rows both front ends show for an export report, computed once here: verification, batch-1
latency, the int8 candidates and the prominent slower-than-fp32 warning."""

from __future__ import annotations

from studio.core.base.units import format_bytes, format_count, format_percent
from studio.core.report.export import ExportReport, FileRow
from studio.core.report.rows import DASH, format_ms

VERIFY_ROWS = ("Samples", "Max |diff|", "Cosine", "Top-1 agreement", "Accuracy", "File size", "Int8 mode")
LATENCY_COLUMNS = ("1 thread\nmedian", "1 thread\np95", "2 threads\nmedian", "2 threads\np95")
LATENCY_ROWS = (("runtime", "{runtime} (this file)"), ("runtime_fp32", "{runtime} fp32 file"),
                ("pytorch", "PyTorch (compressed)"), ("pytorch_uncompressed", "PyTorch (uncompressed)"))
CANDIDATE_COLUMNS = ("setting", "accuracy", "agreement", "latency (2 thr)", "speed vs fp32\n(1 & 2 thr)", "size",
                     "size vs fp32")


def _fraction(value: float | None) -> str:
    return DASH if value is None else format_percent(value)


def verification_rows(report: ExportReport) -> list[tuple[str, str]]:
    """(label, text): how the file agreed with PyTorch on the held-out inputs."""
    check = report.verification
    labeled = check.labeled_samples or check.samples
    accuracy = _fraction(check.accuracy)
    values = (
        format_count(check.samples),
        f"{check.max_abs:.3g}",
        f"{check.cosine:.6f}",
        _fraction(check.top1_agreement),
        accuracy if accuracy == DASH else f"{accuracy} (n={labeled})",
        format_bytes(report.file_bytes),
        report.int8_mode or DASH,
    )
    return list(zip(VERIFY_ROWS, values))


def latency_rows(report: ExportReport) -> list[tuple[str, tuple[str, ...]]]:
    """(who, median and p95 at 1 and 2 threads) for this file, the fp32 file and PyTorch."""
    out = []
    for key, label in LATENCY_ROWS:
        cells = tuple(format_ms(((report.latency.get(threads) or {}).get(key) or {}).get(stat))
                      for threads in ("1_thread", "2_thread") for stat in ("median_ms", "p95_ms"))
        out.append((label.format(runtime=report.runtime), cells))
    return out


def speedup_text(report: ExportReport) -> str:
    """'This file is 1.80× faster than the fp32 ONNX Runtime file and 2.10× faster than PyTorch (…).'"""
    texts = []
    same = ((report.speed_checks or {}).get("2_thread") or {}).get("verdict") == "same"
    for value, what in ((report.speedup_vs_fp32, f"the fp32 {report.runtime} file"),
                        (report.speedup_vs_pytorch, "PyTorch")):
        if value and not (what != "PyTorch" and report.precision == "fp32"):
            if same and what != "PyTorch":  # the repeated timings could not tell them apart
                texts.append(f"the same speed as {what} within noise ({value:.2f}×)")
                continue
            word = "faster" if value >= 1 else "slower"
            texts.append(f"{value if value >= 1 else 1 / value:.2f}× {word} than {what}")
    return f"This file is {' and '.join(texts)} (2 threads, median)." if texts else ""


def _pct(value: float | None) -> str:
    return DASH if value is None else f"{value * 100:.1f} %"


def candidate_rows(report: ExportReport) -> list[tuple[str, ...]]:
    """The fp32 file, then every int8 candidate (none: no rows)."""
    if not report.candidates:
        return []
    rows: list[FileRow] = [report.fp32, *report.candidates]
    return [(("✔ " if row.chosen and row is not report.fp32 else "") + row.label,
             _pct(row.accuracy) + (f" (n={row.samples})" if row.samples and row.accuracy is not None else ""),
             _pct(row.top1_agreement),
             DASH if row.latency_ms is None else f"{row.latency_ms:.2f} ms",
             DASH if row.speed_vs_fp32 is None else f"{row.speed_vs_fp32:.2f}×",
             format_bytes(row.file_bytes),
             DASH if row.size_vs_fp32 is None else f"{row.size_vs_fp32:.2f}×") for row in rows]


def _threads(key: str) -> str:
    return key.replace("_thread", " thread").replace("2 thread", "2 threads")


def speed_verdict_text(report: ExportReport) -> str:
    """'vs the fp32 file, over 3 repeats: 1 thread faster (1.52–1.71×), 2 threads the same within noise (0.93–1.20×)'."""
    if not report.speed_checks:
        return ""
    words = {"faster": "faster", "slower": "SLOWER", "same": "the same within noise"}
    parts = [f"{_threads(key)} {words[c['verdict']]} ({min(c['repeat_ratios']):.2f}–{max(c['repeat_ratios']):.2f}×"
             + (" in CPU time" if c.get("measure") == "cpu" else "") + ")"
             for key, c in report.speed_checks.items() if c.get("repeat_ratios")]
    runs = max(len(c.get("repeat_ratios") or ()) for c in report.speed_checks.values())
    return f"vs the fp32 file, over {runs} repeats: " + ", ".join(parts) if parts else ""


def slower_message(report: ExportReport) -> str:
    """The prominent warning of a quantized file slower than its fp32 file (beyond the noise
    of repeated timings, at the thread counts named)."""
    slow = [key for key, c in (report.speed_checks or {}).items() if c["verdict"] == "slower"] or ["2_thread"]
    key = slow[-1]
    mine, fp32 = report.median_ms("runtime", key), report.median_ms("runtime_fp32", key)
    return (f"SLOWER THAN FP32 IN {report.runtime.upper()}: this {report.precision} file takes "
            f"{mine:.3f} ms vs {fp32:.3f} ms for the fp32 file ({mine / fp32:.2f}× the time, "
            f"{' and '.join(_threads(k) for k in slow)}, batch 1, every repeat). Export fp32 instead, or try the "
            "other format.")


def not_faster_message(report: ExportReport) -> str:
    """The prominent warning of an `auto` int8 pick no faster than the fp32 file (when the
    final timing did not already call it slower); the choice text says what was ruled out."""
    rows = report.candidates or ()
    chosen = next((row for row in rows if row.chosen), None)
    if report.slower_than_fp32 or len(rows) < 2 or chosen is None or chosen.speed_vs_fp32 is None \
            or chosen.speed_vs_fp32 >= 1.05:
        return ""
    return (f"NOT FASTER THAN FP32 IN {report.runtime.upper()}: no int8 candidate within the accuracy budget is "
            f"faster than the fp32 file (this one runs at {chosen.speed_vs_fp32:.2f}× its speed); it only saves size. "
            "See the choice under the candidates.")


def slower_than_uncompressed_message(report: ExportReport) -> str:
    return ("The exported model is slower than the uncompressed PyTorch model at batch 1 "
            f"({report.median_ms('runtime'):.3f} ms vs {report.median_ms('pytorch_uncompressed'):.3f} ms).")


def file_line(report: ExportReport) -> str:
    """'onnx int8 (static) → m.onnx  27.1 kB (0.27× the fp32 file)'."""
    return (f"{report.format} {report.precision}" + (f" ({report.int8_mode})" if report.int8_mode else "")
            + f" → {report.file}  {format_bytes(report.file_bytes)}"
            + (f" ({report.size_vs_fp32:.2f}× the fp32 file)" if report.precision != "fp32" else ""))
