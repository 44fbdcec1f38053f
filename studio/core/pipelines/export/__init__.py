"""Export to ONNX or TFLite, verified in the target runtime before the studio calls it good.

`export(...)` is a cancellable generator of events like every core pipeline; the file and
its JSON report (`FILE.report.json`, e.g. `model.onnx.report.json`, beside it) are written atomically.
"""

from __future__ import annotations

from typing import Any

from studio.core.pipelines.export.request import (
    ACCURACY_BUDGET, AGREEMENT_BUDGET, CALIBRATION_METHODS, CALIBRATION_SAMPLES, FORMATS, INT8_MODES, PRECISIONS,
    RANDOM_VERIFY_SAMPLES, VERIFY_SAMPLES, ExportRequest, ExportResult, report_path_for)

__all__ = ["ACCURACY_BUDGET", "AGREEMENT_BUDGET", "CALIBRATION_METHODS", "CALIBRATION_SAMPLES", "FORMATS",
           "INT8_MODES", "PRECISIONS", "RANDOM_VERIFY_SAMPLES", "VERIFY_SAMPLES", "ExportRequest", "ExportResult",
           "report_path_for", "export", "conv_heavy"]


def __getattr__(name: str) -> Any:
    """The pipeline (torch, onnx, litert) loads on first use, so the window can show the
    export panel without importing torch."""
    if name in ("export", "conv_heavy"):
        from studio.core.pipelines.export import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
