"""One object per target runtime, so the pipeline reads the same for ONNX and TFLite:
convert to fp32, name the units (nodes / op scopes) that implement layers, quantize a
candidate, run a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from studio.core.pipelines.export.candidates import Candidate
from studio.core.model.input_spec import InputSpec
from studio.core.model.loaded_model import LoadedModel
from studio.core.report.export import RUNTIME_NAMES


class OnnxRuntime:
    name = RUNTIME_NAMES["onnx"]
    converter = "torch.onnx (dynamo) + ONNX Runtime pre-processing (BatchNorm folded, shapes inferred)"
    fp16_tool = "ONNX Runtime float16 converter, fp32 inputs/outputs"

    def __init__(self, loaded: LoadedModel) -> None:
        from studio.core.pipelines.export.onnx_export import u8s8_saturates

        self.reduce_range = u8s8_saturates()
        self.weights = ("7-bit (reduce_range: this x86 CPU has no VNNI, where ONNX Runtime's u8×s8 int8 kernels "
                        "saturate with 8-bit weights)" if self.reduce_range else "8-bit")
        self.quantizer = ("ONNX Runtime quantizer, symmetric per-channel int8 weights"
                          ", every supported op type; static: QDQ"
                          f"{', 7-bit weights (reduce_range)' if self.reduce_range else ''}")
        self.output_name = ("logits" if loaded.extras.get("data") or "Classification" in type(loaded.module).__name__
                            else "output")
        self.input_names = [t.name for t in loaded.input_spec.tensors]
        from studio.core.pipelines.export import onnx_transformers

        if onnx_transformers.fusable(loaded.module):  # what `convert` does for the BERT family (plain export if it fails)
            self.converter = onnx_transformers.CONVERTER

    def convert(self, model: nn.Module, spec: InputSpec, work: Path) -> Path:
        from studio.core.base.errors import StudioError
        from studio.core.pipelines.export import onnx_export, onnx_transformers

        raw, base = work / "raw.onnx", work / "fp32.onnx"
        self.cache = work / "calibration.json"  # one calibration, reused by every static candidate
        if onnx_transformers.fusable(model):  # BERT family: ORT's attention/LayerNorm/GELU fusion
            try:
                onnx_transformers.export_fused(model, spec, base, self.output_name)
                return base
            except StudioError:  # the plain export below still works, unfused
                self.converter = type(self).converter
        onnx_export.export_fp32(model, spec, raw, self.output_name)
        onnx_export.optimize(raw, base)
        return base

    def float_units(self, base: Path, layers: list[str]) -> tuple[tuple[str, str], ...]:
        from studio.core.pipelines.export.onnx_export import weight_nodes

        wanted = set(layers)
        return tuple((node, module) for node, module in weight_nodes(base) if module in wanted)

    def weight_units(self, base: Path) -> tuple[tuple[str, str], ...]:
        from studio.core.pipelines.export.onnx_export import weight_nodes

        return tuple((node, module or node) for node, module in weight_nodes(base))

    def fragile_units(self, base: Path) -> tuple[tuple[str, str], ...]:
        from studio.core.pipelines.export.onnx_export import weight_nodes

        nodes = weight_nodes(base)
        if len(nodes) < 3:
            return ()
        return tuple((node, module or node) for node, module in (nodes[0], nodes[-1]))

    def calibration_feed(self, calibration: list) -> list[dict[str, Any]]:
        return [dict(zip(self.input_names, s.inputs)) for s in calibration]

    def calibration_label(self, method: str) -> str:
        return {"minmax": "min-max", "percentile": "percentile 99.999", "entropy": "entropy (KL)"}[method]

    def quantize(self, base: Path, dst: Path, candidate: Candidate, feed: list, method: str) -> None:
        from studio.core.pipelines.export.onnx_export import quantize_int8

        from studio.core.pipelines.export.onnx_export import float_weights

        quantize_int8(base, dst, candidate.mode, list(candidate.keep_float), feed, method, self.reduce_range,
                      getattr(self, "cache", None))
        if candidate.float_weights:
            float_weights(dst, base, dst, candidate.float_weights)

    def weights_float(self, static: Path, base: Path, units: tuple[str, ...], dst: Path) -> None:
        """The static file with the weights of `units` in fp32: what the per-layer probe measures."""
        from studio.core.pipelines.export.onnx_export import float_weights

        float_weights(static, base, dst, units)

    def fp16(self, base: Path, dst: Path) -> None:
        from studio.core.pipelines.export.onnx_export import to_fp16

        to_fp16(base, dst)

    def runner(self, path: Path, threads: int):
        from studio.core.pipelines.export.verify import onnx_runner

        return onnx_runner(path, threads)


class TFLiteRuntime:
    name = RUNTIME_NAMES["tflite"]
    converter = "litert-torch (BatchNorm and activations fused into the convolutions)"
    quantizer = "AI Edge Quantizer, per-channel int8 weights, every supported op"
    weights = "8-bit"
    fp16_tool = "AI Edge Quantizer float casting"

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded

    def convert(self, model: nn.Module, spec: InputSpec, work: Path) -> Path:
        from studio.core.pipelines.export.tflite_export import export_fp32

        base = work / "fp32.tflite"
        export_fp32(model, spec, base)
        self.keys = None
        return base

    def float_units(self, base: Path, layers: list[str]) -> tuple[tuple[str, str], ...]:
        from studio.core.pipelines.export.tflite_export import scopes_for_layers

        out = []
        for layer in layers:
            out += [(scope, layer) for scope in scopes_for_layers(base, [layer])]
        return tuple(out)

    def fragile_units(self, base: Path) -> tuple[tuple[str, str], ...]:
        from studio.core.pipelines.export.tflite_export import weight_ops

        ops = weight_ops(base)
        if len(ops) < 3:
            return ()
        return ((ops[0][1], f"first {ops[0][0].lower()}"), (ops[-1][1], f"last {ops[-1][0].lower()}"))

    def calibration_feed(self, calibration: list) -> list[dict[str, np.ndarray]]:
        return calibration  # converted once the file (and its signature's input names) exists

    def calibration_label(self, method: str) -> str:
        return "min-max over all inputs (the AI Edge Quantizer offers no percentile/entropy calibration)"

    def quantize(self, base: Path, dst: Path, candidate: Candidate, feed: list, method: str) -> None:
        from studio.core.pipelines.export.tflite_export import quantize, signature_inputs

        keys = signature_inputs(base)
        data = [{k: v.astype(np.int32) if v.dtype.kind in "iu" else v for k, v in zip(keys, s.inputs)} for s in feed]
        quantize(base, dst, "int8", candidate.mode, data, candidate.keep_float)

    def fp16(self, base: Path, dst: Path) -> None:
        from studio.core.pipelines.export.tflite_export import quantize

        quantize(base, dst, "fp16", "dynamic")

    def runner(self, path: Path, threads: int):
        from studio.core.pipelines.export.verify import tflite_runner

        return tflite_runner(path, threads)


def runtime_for(fmt: str, loaded: LoadedModel) -> OnnxRuntime | TFLiteRuntime:
    return OnnxRuntime(loaded) if fmt == "onnx" else TFLiteRuntime(loaded)
