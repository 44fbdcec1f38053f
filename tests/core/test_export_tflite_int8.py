"""LiteRT int8 files as XNNPACK runs them: the static file is int8 end to end, with symmetric
per-channel weights, and every op is delegated (one partition); the dynamic-range file leaves
its depthwise convolutions to the built-in kernels (why it is slower than fp32 on CNNs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from studio.core.model.input_spec import InputSpec
from studio.core.pipelines.export import tflite_export


class DepthwiseNet(nn.Module):
    """Stem, depthwise-separable block with ReLU6 and a residual add, pooling, classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16), nn.BatchNorm2d(16), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(16, 16, 1), nn.BatchNorm2d(16))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = x + self.pw(self.dw(x))
        return self.fc(x.mean((2, 3)))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    torch.manual_seed(0)
    model = DepthwiseNet().eval()
    work = tmp_path_factory.mktemp("tflite")
    base, static, dynamic = work / "fp32.tflite", work / "static.tflite", work / "dynamic.tflite"
    tflite_export.export_fp32(model, InputSpec.parse("1x3x32x32 float32"), base)
    key = tflite_export.signature_inputs(base)[0]
    rng = np.random.default_rng(0)
    calibration = [{key: rng.standard_normal((1, 3, 32, 32)).astype(np.float32)} for _ in range(16)]
    tflite_export.quantize(base, static, "int8", "static", calibration)
    tflite_export.quantize(base, dynamic, "int8", "dynamic")
    return base, static, dynamic, calibration


def test_static_int8_is_int8_end_to_end_and_fully_delegated(files):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    _, static, _, _ = files
    coverage = tflite_export.xnnpack_coverage(static)
    assert coverage["partitions"] == 1 and coverage["undelegated"] == []
    assert coverage["delegated"] == coverage["ops"] >= 5
    plain = Interpreter(model_path=str(static),
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    plain.allocate_tensors()
    tensors = {t["index"]: t for t in plain.get_tensor_details()}
    weights = 0
    for op in plain._get_ops_details():
        assert op["op_name"] not in ("QUANTIZE", "DEQUANTIZE")  # no float islands
        for index in op["inputs"]:
            tensor = tensors[int(index)]
            assert tensor["dtype"] in (np.int8, np.int32)
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            weight = tensors[int(op["inputs"][1])]
            params = weight["quantization_parameters"]
            axis = 3 if op["op_name"] == "DEPTHWISE_CONV_2D" else 0
            assert params["quantized_dimension"] == axis and len(params["scales"]) == weight["shape"][axis]
            assert not params["zero_points"].any()  # symmetric
            weights += 1
    assert weights == 4


def test_static_calibration_is_min_max_over_every_input(files):
    """The input's int8 range spans the smallest and largest value of all calibration inputs
    (the quantizer's default moving average would narrow it towards the last inputs')."""
    from ai_edge_litert.interpreter import Interpreter

    _, static, _, calibration = files
    values = np.concatenate([next(iter(c.values())).ravel() for c in calibration])
    scale, zero = Interpreter(model_path=str(static)).get_input_details()[0]["quantization"]
    assert scale * 255 == pytest.approx(values.max() - values.min(), rel=1e-3)
    assert -128 - zero == pytest.approx(values.min() / scale, abs=1)


def test_dynamic_range_leaves_depthwise_convolutions_outside_xnnpack(files):
    base, _, dynamic, _ = files
    assert tflite_export.xnnpack_coverage(base)["undelegated"] == []
    coverage = tflite_export.xnnpack_coverage(dynamic)
    assert coverage["undelegated"] == ["DEPTHWISE_CONV_2D"] and coverage["partitions"] == 2
