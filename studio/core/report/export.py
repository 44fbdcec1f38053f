"""The export report: what `export` returns and writes beside the file (`model.onnx.report.json`;
the field names below are that file's keys)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from studio.core.report.serial import OMIT_NONE, Record

RUNTIME_NAMES = {"onnx": "ONNX Runtime", "tflite": "LiteRT"}
Latency = dict[str, dict[str, dict[str, float]]]  # "1_thread" → "runtime" | "pytorch" … → median_ms, p95_ms


@dataclass(frozen=True)
class ExportCheck(Record):
    """A file's outputs against PyTorch's on held-out batch-1 inputs; accuracy on the labelled ones."""

    samples: int
    max_abs: float
    cosine: float
    top1_agreement: float | None = None
    accuracy: float | None = None
    labeled_samples: int = 0


@dataclass(frozen=True, kw_only=True)
class FileRow(ExportCheck):
    """The fp32 file or one int8 candidate: how it verified, its size and its speed."""

    label: str
    file_bytes: int
    mode: str | None = field(default=None, metadata=OMIT_NONE)
    float_layers: tuple[str, ...] | None = field(default=None, metadata=OMIT_NONE)
    size_vs_fp32: float | None = field(default=None, metadata=OMIT_NONE)
    within_budget: bool | None = field(default=None, metadata=OMIT_NONE)
    latency: dict[str, dict[str, float]] | None = field(default=None, metadata=OMIT_NONE)  # threads → stats
    latency_ms: float | None = field(default=None, metadata=OMIT_NONE)
    speed_vs_fp32: float | None = field(default=None, metadata=OMIT_NONE)
    chosen: bool | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True)
class ExportReport(Record):
    format: str
    precision: str
    int8_mode: str | None
    float_layers: tuple[str, ...] | None
    quantized_layers: tuple[str, ...] | None
    calibration: dict[str, Any] | None
    file: str
    file_bytes: int
    fp32_file_bytes: int
    size_vs_fp32: float
    model: str
    source: str
    input_spec: str
    data: str | None
    verification: ExportCheck
    fp32: FileRow
    latency: Latency
    speedup_vs_fp32: float
    speedup_vs_pytorch: float
    slower_than_fp32: bool
    slower_than_uncompressed: bool
    candidates: tuple[FileRow, ...] | None = None
    choice: str | None = None
    float_layers_rule: str | None = None
    warnings: tuple[str, ...] = ()
    # threads → {"ratio": fp32 / this file, "repeat_ratios": [...], "verdict": faster | same | slower}
    speed_checks: dict[str, dict[str, Any]] | None = field(default=None, metadata=OMIT_NONE)

    @property
    def runtime(self) -> str:
        return RUNTIME_NAMES.get(self.format, self.format)

    def median_ms(self, who: str, threads: str = "2_thread") -> float | None:
        """Median batch-1 time of `who` (runtime, runtime_fp32, pytorch, pytorch_uncompressed)."""
        return ((self.latency.get(threads) or {}).get(who) or {}).get("median_ms")
