"""Export to ONNX or TFLite, verified in the target runtime before the studio calls it good.

`export(...)` is a cancellable generator of events like every core pipeline; the file and
its JSON report (`NAME.report.json`, beside it) are written atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMATS = {"onnx": ".onnx", "tflite": ".tflite"}
PRECISIONS = ("fp32", "fp16", "int8")
VERIFY_SAMPLES = 64


@dataclass(frozen=True)
class ExportRequest:
    format: str
    out: Path
    precision: str = "fp32"
    force: bool = False
    int8_mode: str = "auto"          # auto | dynamic | static
    samples: int = VERIFY_SAMPLES

    def problems(self) -> list[str]:
        out = []
        if self.format not in FORMATS:
            out.append(f"format {self.format!r}: use {' or '.join(FORMATS)}")
        if self.precision not in PRECISIONS:
            out.append(f"precision {self.precision!r}: use {', '.join(PRECISIONS)}")
        if self.int8_mode not in ("auto", "dynamic", "static"):
            out.append(f"int8 mode {self.int8_mode!r}: use auto, dynamic or static")
        return out


@dataclass(frozen=True)
class ExportResult:
    path: Path
    report_path: Path
    report: dict[str, Any]


def report_path_for(out: Path) -> Path:
    return out.with_name(out.stem + ".report.json")


def __getattr__(name: str) -> Any:
    """The pipeline (torch, onnx, litert) loads on first use, so the window can show the
    export panel without importing torch (house rule: fast start)."""
    if name in ("export", "conv_heavy"):
        from studio.core.export import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
