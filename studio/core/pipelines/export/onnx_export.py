"""ONNX export with torch.onnx's dynamo exporter (torch.export based: it handles both our
CNNs and Hugging Face transformers with dynamic batch and sequence axes, and records each
node's module path, which lets int8 be restricted to the layers the plan marked), and
precision realized by ONNX Runtime's own tools (pre-processing, fp16 converter, dynamic /
static QDQ int8 over every op type it supports)."""

from __future__ import annotations

import ast
import contextlib
import io
import warnings
from pathlib import Path
from typing import Iterable

import torch

from studio.core.base.logs import quiet_loggers
from studio.core.base.errors import StudioError
from studio.core.pipelines.export.wrap import ExportWrapper, example_args
from studio.core.model.input_spec import InputSpec

OPSET = 18
WEIGHT_OPS = {"MatMul", "Gemm", "Conv"}  # the ops that carry a layer's weight


def dynamic_shapes(spec: InputSpec) -> tuple[dict[int, object], ...]:
    batch = torch.export.Dim("batch", max=4096)
    sequence = torch.export.Dim("sequence", max=8192)
    shapes = []
    for t in spec.tensors:
        axes: dict[int, object] = {0: batch}
        if t.is_integer and len(t.shape) == 2:
            axes[1] = sequence  # token ids and masks: any sequence length
        shapes.append(axes)
    return tuple(shapes)


@contextlib.contextmanager
def _quiet():
    """The exporter narrates every step; the CLI's output is for the user's results. A free axis
    the model specialises makes torch log each failed guard with a traceback (ERROR level) before
    the exporter raises; that error is reported once, as one sentence."""
    import logging

    quiet_loggers("torch.onnx")
    guards = logging.getLogger("torch._guards")
    level = guards.level
    guards.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        guards.setLevel(level)


def export_fp32(model: torch.nn.Module, spec: InputSpec, path: Path, output_name: str) -> None:
    """Batch (and token) axes free; a model that fixes them in its forward (e.g. a reshape with the
    batch size built in: ConvNeXt from Hugging Face) is exported at batch 1 with the spec's other
    sizes, the shape verification and on-device inference use."""
    wrapper = ExportWrapper(model, spec).eval()
    args = example_args(spec)
    try:
        _export(wrapper, args, spec, path, output_name, (dynamic_shapes(spec),))
        return
    except Exception:  # noqa: BLE001 - the fixed-shape export below says what is wrong, if anything
        pass
    try:
        _export(wrapper, tuple(a[:1] for a in args), spec, path, output_name, None)
    except Exception as exc:
        raise StudioError(f"ONNX export failed: {_summary(exc)} Try exporting the uncompressed model, "
                          "or TFLite.") from exc


def _export(wrapper: torch.nn.Module, args: tuple[torch.Tensor, ...], spec: InputSpec, path: Path,
            output_name: str, shapes: tuple[dict[int, object], ...] | None) -> None:
    with _quiet(), torch.no_grad():
        program = torch.onnx.export(wrapper, args, dynamo=True, opset_version=OPSET,
                                    input_names=[t.name for t in spec.tensors], output_names=[output_name],
                                    dynamic_shapes=shapes, optimize=True, verbose=False)
        program.save(str(path), external_data=False)


def _summary(exc: Exception) -> str:
    """The exporter's own one-line cause (its 'Exception summary'), without colour codes."""
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if "## Exception summary" in lines:
        lines = lines[lines.index("## Exception summary") + 1:]
    return (lines[0][:400] if lines else type(exc).__name__).rstrip(".") + "."


def optimize(src: Path, dst: Path) -> None:
    """ONNX Runtime's recommended pre-processing before quantization (graph optimization +
    shape inference). The exporter's own optimizer (onnxscript, `optimize=True`) already folded
    constants and BatchNorm into the convolutions, so the quantizer sees Conv+act patterns."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with _quiet():
        quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)


def to_fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def node_module(node) -> str | None:
    """The innermost module path the exporter recorded for a node."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return None
            modules = [s for s in scopes[:-1] if s]
            return modules[-1].removeprefix("model.") if modules else None
    return None


def _layer_of(node, initializers: set[str]) -> str | None:
    """The module a weight node implements: read from its weight's name (`model.a.b.weight`,
    which survives the optimizer folding BatchNorm into the conv) or else from the module path
    the exporter recorded."""
    for name in node.input[1:2]:
        if name in initializers and name.startswith("model.") and name.endswith(".weight"):
            return name[len("model."):-len(".weight")]
    return node_module(node)


def weight_nodes(path: Path) -> list[tuple[str, str | None]]:
    """(node name, module path) of every Conv/Gemm/MatMul node, in graph order."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return [(n.name, _layer_of(n, initializers)) for n in graph.node if n.op_type in WEIGHT_OPS]


def layer_nodes(path: Path, layers: Iterable[str]) -> list[str]:
    """ONNX weight-bearing nodes (Conv/Gemm/MatMul) that implement the named modules."""
    wanted = set(layers)
    return [node for node, module in weight_nodes(path) if module in wanted]


nodes_for_layers = layer_nodes


def count_ops(path: Path) -> dict[str, int]:
    import onnx

    counts: dict[str, int] = {}
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def u8s8_saturates() -> bool:
    """True on x86 CPUs without VNNI (AVX2 / AVX-512 without VNNI): there ONNX Runtime's u8×s8
    int8 kernels add pairs of products in int16 (vpmaddubsw), which saturates with 8-bit
    weights. Measured on EfficientNet-Lite0 (AMD EPYC, AVX2): the very same static int8 file
    scored 80.4 % with the default kernels and 94.4 % (= fp32) with ORT's slow u8×u8 precision
    mode (`session.x64quantprecision`), at 2.8x the fp32 latency. ORT's documented fix is
    `reduce_range` (7-bit weights), which cannot overflow."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return False  # ARM's int8 dot products accumulate in int32
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        flags = []
    if flags:
        return not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)
    try:  # macOS / Windows: numpy knows the CPU's features
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        return False
    return not (features.get("AVX512VNNI") or features.get("AVXVNNI"))


def quantize_int8(src: Path, dst: Path, mode: str, exclude: list[str],
                  calibration: list[dict[str, object]] | None, method: str = "minmax",
                  reduce_range: bool = False, cache: Path | None = None) -> None:
    """ONNX Runtime's quantizer as its maintainers recommend: on the pre-processed graph
    (BatchNorm folded into Conv, shape inference), every op type it supports (not only
    Conv/Gemm/MatMul: restricting it leaves float islands that cost accuracy and time),
    symmetric per-channel int8 weights; static QDQ calibrated on `calibration`, with 7-bit
    weights if `reduce_range` (where `u8s8_saturates`); `cache`: ONNX Runtime's calibration
    cache file (written by the first static call, read by the next ones)."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_dynamic, quantize_static)

    quiet_loggers("")  # the quantizer logs advice on the root logger
    if mode == "dynamic":
        # The dynamic quantizer first splits Gemm into <name>_MatMul + <name>_Add.
        names = exclude + [f"{name}_MatMul" for name in exclude]
        with _quiet():
            # 8-bit weights: with reduce_range the dynamic EfficientNet-Lite0 file fell from 73.6 % to 22 %
            quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
                             nodes_to_exclude=names or None)
        return

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calibration or [])

        def get_next(self):
            return next(self.items, None)

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    extra = {"WeightSymmetric": True, "ActivationSymmetric": False}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    with _quiet():
        quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        reduce_range=reduce_range, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=exclude or None, calibrate_method=methods[method], extra_options=extra,
                        calibration_cache_path=cache)


def float_weights(qdq: Path, base: Path, dst: Path, nodes: Iterable[str]) -> None:
    """The static QDQ file with the weights of `nodes` back in fp32 (read from the fp32 file):
    their inputs and outputs stay int8, only the weight's DequantizeLinear goes, so ONNX Runtime
    runs those few convolutions in float. ONNX Runtime's quantizer cannot express this itself
    (`nodes_to_exclude` also drops the node's activation quantization, which measured worse
    on EfficientNet-Lite0); the quantized graph is otherwise exactly the quantizer's."""
    import onnx

    model = onnx.load(str(qdq))
    graph = model.graph
    fp32 = onnx.load(str(base)).graph
    fp32_weight = {n.name: n.input[1] for n in fp32.node if n.op_type in WEIGHT_OPS}
    fp32_inits = {i.name: i for i in fp32.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    names = {i.name for i in graph.initializer}
    for node in (n for n in graph.node if n.name in set(nodes)):
        weight = fp32_weight.get(node.name)
        if weight not in fp32_inits or producers.get(node.input[1]) is None:
            continue  # not quantized, or a weight computed in the graph
        if weight not in names:
            graph.initializer.append(fp32_inits[weight])
            names.add(weight)
        node.input[1] = weight
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    dead = [n for n in graph.node if n.op_type == "DequantizeLinear" and n.output[0] not in used]
    for n in dead:
        graph.node.remove(n)
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    onnx.save(model, str(dst))
