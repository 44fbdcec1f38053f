"""Facts about a compression report that both front ends state the same way."""

from __future__ import annotations


def latency_is_simulated(report: dict) -> bool:
    """The compressed model got slower in PyTorch because its quantization is simulated
    (quantize-dequantize around float math): the runtime's latency comes from an export."""
    before, after = report.get("before") or {}, report.get("after") or {}
    return (after.get("latency_ms") or 0) > (before.get("latency_ms") or 0) > 0 and \
        any(row.get("technique") == "quantize" for row in report.get("layers") or [])
