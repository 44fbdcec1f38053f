"""What an export is asked to do and what it returns; imported by every export module, so the
package itself stays a thin front door."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.core.report.export import ExportReport

FORMATS = {"onnx": ".onnx", "tflite": ".tflite"}
PRECISIONS = ("fp32", "fp16", "int8")
INT8_MODES = ("auto", "dynamic", "static")
CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
VERIFY_SAMPLES = 1000        # the whole validation split up to this cap
RANDOM_VERIFY_SAMPLES = 64   # without data: inputs made from the input spec
CALIBRATION_SAMPLES = 200    # from the training split, never the verification samples
ACCURACY_BUDGET = 0.005      # auto: at least 99.5 % of the fp32 file's accuracy (relative) …
AGREEMENT_BUDGET = 0.99      # … or, without labels, top-1 agreement with PyTorch of at least 99 %


@dataclass(frozen=True)
class ExportRequest:
    """`keep_float`: layer names (or fnmatch patterns) the user wants left in float in an int8
    file, on top of the plan's `quantize: null` layers."""

    format: str
    out: Path
    precision: str = "fp32"
    force: bool = False
    int8_mode: str = "auto"          # auto (measured candidates) | dynamic | static
    samples: int | None = None       # verification cap; None: VERIFY_SAMPLES (RANDOM_VERIFY_SAMPLES without data)
    calibration: str = "minmax"      # static int8 calibration method
    calibration_samples: int = CALIBRATION_SAMPLES
    keep_float: tuple[str, ...] = ()
    accuracy_budget: float = ACCURACY_BUDGET
    sensitivity: Path | None = None  # a `studio sensitivity` result: auto tries its most fragile layers in float

    def problems(self) -> list[str]:
        out = []
        if self.format not in FORMATS:
            out.append(f"format {self.format!r}: use {' or '.join(FORMATS)}")
        if self.precision not in PRECISIONS:
            out.append(f"precision {self.precision!r}: use {', '.join(PRECISIONS)}")
        if self.int8_mode not in INT8_MODES:
            out.append(f"int8 mode {self.int8_mode!r}: use auto, dynamic or static")
        if self.calibration not in CALIBRATION_METHODS:
            out.append(f"calibration {self.calibration!r}: use {', '.join(CALIBRATION_METHODS)}")
        if self.samples is not None and self.samples < 1:
            out.append(f"samples {self.samples!r} must be at least 1")
        if self.calibration_samples < 1:
            out.append(f"calibration samples {self.calibration_samples!r} must be at least 1")
        if not 0 <= self.accuracy_budget < 1:
            out.append(f"accuracy budget {self.accuracy_budget!r} must be a fraction in [0, 1)")
        return out


@dataclass(frozen=True)
class ExportResult:
    path: Path
    report_path: Path
    report: ExportReport


def report_path_for(out: Path) -> Path:
    """`model.onnx.report.json`: named after the whole file, so model.onnx and model.tflite
    beside each other keep their own reports."""
    return out.with_name(out.name + ".report.json")
