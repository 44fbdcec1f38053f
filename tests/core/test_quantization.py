"""Simulated quantization: fidelity per dtype, digits accuracy, STE gradients, static
calibration and its persistence, storage arithmetic, config validation, cancel."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from studio.core.base.cancel import CancelToken, Cancelled
from studio.core.base.errors import StudioError
from studio.core.techniques.base import TECHNIQUES
from studio.core.techniques.base import ApplyContext, Estimate
from studio.core.techniques.quantization import (Quantize, QuantizeConfig, QuantConv2d, QuantLinear, calibrate_,
                                                 quantize_module, storage_bytes)

INT8_DYN = QuantizeConfig()
INT8_STATIC = QuantizeConfig(activations="static")
INT8_TENSOR = QuantizeConfig(per_channel=False)
INT8_WONLY = QuantizeConfig(activations=None)
INT4_G32 = QuantizeConfig(dtype="int4", group_size=32)
FP16 = QuantizeConfig(dtype="fp16")

LAYERS = {
    "linear": lambda: nn.Linear(96, 48),
    "conv": lambda: nn.Conv2d(8, 16, 3, padding=1),
    "depthwise-s2": lambda: nn.Conv2d(16, 16, 3, stride=2, padding=1, groups=16),
    "grouped-dilated": lambda: nn.Conv2d(8, 12, 3, padding=2, dilation=2, groups=4, bias=False),
    "reflect-pad": lambda: nn.Conv2d(4, 8, 3, padding=1, padding_mode="reflect"),
}


def _input(layer: nn.Module, batch: int = 8) -> torch.Tensor:
    if isinstance(layer, nn.Linear):
        return torch.randn(batch, layer.in_features)
    return torch.randn(batch, layer.in_channels, 12, 12)


def _quantized(layer: nn.Module, config: QuantizeConfig, calib: torch.Tensor) -> nn.Module:
    q = quantize_module(copy.deepcopy(layer), config)
    if q.static:
        q.start_calibration_()
        q(calib)
        assert q.freeze_calibration_()
    return q


def _errors(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    cosine = float(F.cosine_similarity(a.flatten(), b.flatten(), dim=0))
    return cosine, float((a - b).norm() / a.norm())


# ---------------------------------------------------------------- fidelity per layer type

@pytest.mark.parametrize("kind", LAYERS)
def test_simulated_quantization_stays_close_to_float(kind):
    torch.manual_seed(0)
    layer = LAYERS[kind]()
    x = _input(layer)
    with torch.no_grad():
        ref = layer(x)
        results = {}
        for label, config in [("int8-dyn", INT8_DYN), ("int8-static", INT8_STATIC), ("int8-tensor", INT8_TENSOR),
                              ("int4", INT4_G32), ("fp16", FP16)]:
            results[label] = _errors(ref, _quantized(layer, config, x)(x))
    for label in ("int8-dyn", "int8-static"):
        cosine, rel = results[label]
        assert cosine > 0.999 and rel < 0.03, (label, results[label])
    assert results["int8-tensor"][0] > 0.998
    cosine4, rel4 = results["int4"]
    assert cosine4 > 0.99 and rel4 < 0.15, results["int4"]           # bounded ...
    assert rel4 > 2 * results["int8-dyn"][1]                          # ... but clearly worse than int8
    assert results["fp16"][1] < 1e-3 and results["fp16"][0] > 0.999999


@pytest.mark.parametrize("kind", LAYERS)
def test_quant_layer_keeps_geometry_and_parameters(kind):
    layer = LAYERS[kind]()
    q = quantize_module(layer, INT8_DYN)
    assert isinstance(q, QuantConv2d if isinstance(layer, nn.Conv2d) else QuantLinear)
    assert q.weight is layer.weight and q.bias is layer.bias  # shared, so ties and fine-tuning work
    assert list(q.children()) == [] and set(q.state_dict()) == set(layer.state_dict())
    x = _input(layer, 2)
    assert q(x).shape == layer(x).shape


def test_int4_ragged_last_group_is_quantized_per_group():
    torch.manual_seed(0)
    layer = nn.Linear(40, 8)  # 40 = 32 + a last group of 8
    with torch.no_grad():
        layer.weight[:, 32:] *= 100  # would swamp the first group's scale if groups were merged
    q = quantize_module(copy.deepcopy(layer), INT4_G32)
    wq = q.quantized_weight().detach()
    first = (wq[:, :32] - layer.weight[:, :32]).abs().max()
    assert first <= layer.weight[:, :32].abs().max() / 7 / 2 + 1e-6
    assert q.weight_storage_bytes() == math.ceil(8 * 40 / 2) + 4 * 8 * 2 + 4 * 8


# ---------------------------------------------------------------- the digits sample

@pytest.fixture(scope="module")
def digits():
    from studio.core.data.digits import digits_split
    from studio.core.pipelines.opening import LoadRequest, load_model

    return load_model(LoadRequest("sample:digits-cnn")).module.eval(), digits_split()


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def _apply(model: nn.Module, config: QuantizeConfig, context: ApplyContext) -> tuple[nn.Module, list]:
    targets = {n: config for n, m in model.named_modules() if Quantize().supports(m)}
    changes = list(TECHNIQUES["quantize"].apply_(model, targets, context))
    return model, changes


@pytest.mark.parametrize("activations", ["dynamic", "static"])
def test_digits_int8_accuracy_within_one_point(digits, activations):
    model, data = digits
    before = {k: v.clone() for k, v in model.state_dict().items()}
    calibration = lambda: (((data.x_train[i:i + 64],), {}) for i in range(0, 512, 64))  # noqa: E731
    context = ApplyContext(example_inputs=((data.x_test[:2],), {}), calibration=calibration)
    quantized, changes = _apply(copy.deepcopy(model), QuantizeConfig(activations=activations), context)
    fp32, int8 = _accuracy(model, data.x_test, data.y_test), _accuracy(quantized, data.x_test, data.y_test)
    print(f"\ndigits fp32 {fp32:.4f} -> int8 {activations} {int8:.4f}")
    assert fp32 == pytest.approx(0.9911, abs=1e-3)
    assert int8 >= fp32 - 0.01
    assert len(changes) == 6 and all(c.params_before == c.params_after for c in changes)
    assert [c.name for c in changes] == [n for n, m in quantized.named_modules() if isinstance(m, (QuantLinear,
                                                                                                   QuantConv2d))]
    if activations == "static":
        assert all("calibrated on 8 batches" in c.detail for c in changes)
        assert not context.warnings
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the original is bit-identical
    assert not any(isinstance(m, (QuantLinear, QuantConv2d)) for m in model.modules())


def test_digits_int8_is_about_four_times_smaller(digits):
    model, _ = digits
    quantized, _ = _apply(copy.deepcopy(model), INT8_DYN, ApplyContext(example_inputs=((torch.zeros(1, 1, 8, 8),), {})))
    layers = [m for m in quantized.modules() if isinstance(m, (QuantLinear, QuantConv2d))]
    dense = sum(m.weight.nbytes + (m.bias.nbytes if m.bias is not None else 0) for m in layers)
    stored = sum(m.weight_storage_bytes() for m in layers)
    print(f"\ndigits weight bytes fp32 {dense} -> int8 {stored} ({dense / stored:.2f}x); "
          f"model {storage_bytes(model)} -> {storage_bytes(quantized)}")
    assert 3.5 < dense / stored <= 4
    assert storage_bytes(model) - storage_bytes(quantized) == dense - stored


@pytest.mark.parametrize("config", [INT8_STATIC, INT8_TENSOR, INT4_G32, FP16])
def test_projection_matches_measured_storage(digits, config):
    model, _ = digits
    technique = Quantize()
    saved = 0
    for _, layer in model.named_modules():
        if technique.supports(layer):
            params = sum(p.numel() for p in layer.parameters())
            before = Estimate(params, params * 4, 1000, params)
            after = technique.project(layer, config, before)
            assert (after.params, after.flops, after.nonzero) == (params, 1000, params)
            saved += before.bytes - after.bytes
    quantized, _ = _apply(copy.deepcopy(model), config, ApplyContext(example_inputs=((torch.zeros(2, 1, 8, 8),), {})))
    assert storage_bytes(model) - storage_bytes(quantized) == saved


# ---------------------------------------------------------------- straight-through gradients

@pytest.mark.parametrize("config,tol", [(INT8_DYN, 0.05), (INT8_WONLY, 0.05), (INT4_G32, 0.25), (FP16, 1e-3)])
def test_ste_gradients_match_float(config, tol):
    torch.manual_seed(0)
    layer = nn.Linear(64, 16)
    q = QuantLinear.from_float(copy.deepcopy(layer), config)  # simulated (int4 on a Linear is realized: frozen codes)
    x, target = torch.randn(32, 64), torch.randn(32, 16)
    F.mse_loss(layer(x), target).backward()
    F.mse_loss(q(x), target).backward()
    assert q.weight.grad is not None and q.bias.grad is not None
    rel = float((q.weight.grad - layer.weight.grad).norm() / layer.weight.grad.norm())
    assert rel < tol, rel
    assert F.cosine_similarity(q.weight.grad.flatten(), layer.weight.grad.flatten(), dim=0) > 0.97


def test_fine_tuning_step_updates_float_weights():
    torch.manual_seed(0)
    q = quantize_module(nn.Conv2d(3, 4, 3), INT8_DYN)
    before = q.weight.detach().clone()
    optim = torch.optim.SGD(q.parameters(), lr=0.1)
    q(torch.randn(2, 3, 6, 6)).square().mean().backward()
    optim.step()
    assert not torch.equal(before, q.weight)


# ---------------------------------------------------------------- static calibration

def test_static_scale_follows_the_data_range():
    torch.manual_seed(0)
    layer = nn.Linear(32, 8)
    x = torch.randn(64, 32)
    small, large = _quantized(layer, INT8_STATIC, x), _quantized(layer, INT8_STATIC, 10 * x)
    ratio = float(large.act_scale / small.act_scale)
    assert ratio == pytest.approx(10, rel=1e-4)
    assert float(small.act_scale) == pytest.approx(float(x.max() - x.min()) / 255, rel=1e-4)
    assert 0 < int(small.act_zero_point) < 255
    positive = _quantized(layer, INT8_STATIC, x.abs())  # post-ReLU input: zero point at 0
    assert int(positive.act_zero_point) == 0


def test_uncalibrated_static_falls_back_to_batch_range():
    layer = nn.Linear(8, 4)
    q = quantize_module(copy.deepcopy(layer), INT8_STATIC)
    x = torch.randn(4, 8)
    assert not q.calibrated
    assert torch.equal(q(x), quantize_module(copy.deepcopy(layer), INT8_DYN)(x))


def test_calibrated_state_dict_loads_into_rebuilt_model():
    torch.manual_seed(0)

    def float_model():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 5))

    source = float_model()
    targets = {"0": INT8_STATIC, "3": INT8_STATIC}
    data = [torch.randn(4, 3, 6, 6) for _ in range(3)]
    context = ApplyContext(example_inputs=((data[0],), {}), calibration=lambda: (((b,), {}) for b in data))
    changes = list(Quantize().apply_(source, targets, context))
    assert all("calibrated on 3 batches" in c.detail for c in changes)
    state = source.state_dict()
    assert {"0.act_scale", "0.act_zero_point", "3.act_scale", "3.act_zero_point"} <= state.keys()

    rebuilt = float_model()  # fresh float weights, replaced by from_float, then loaded strictly
    rebuilt[0] = QuantConv2d.from_float(rebuilt[0], INT8_STATIC)
    rebuilt[3] = QuantLinear.from_float(rebuilt[3], INT8_STATIC)
    rebuilt.load_state_dict(state, strict=True)
    x = torch.randn(5, 3, 6, 6)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), source(x))
    assert rebuilt[3].calibrated


def test_calibration_uses_eval_mode_and_restores_training_flags():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Linear(4, 2)).train()
    stats = model[1].running_mean.clone()
    list(Quantize().apply_(model, {"0": INT8_STATIC, "3": INT8_STATIC},
                           ApplyContext(example_inputs=((torch.randn(8, 4) + 3,), {}))))
    assert torch.equal(stats, model[1].running_mean)
    assert all(m.training for m in model.modules())


def test_unused_static_layer_warns():
    model = nn.ModuleDict({"used": nn.Linear(4, 4), "unused": nn.Linear(4, 4)})
    model.forward = lambda x: model["used"](x)
    context = ApplyContext(example_inputs=((torch.randn(2, 4),), {}))
    changes = list(Quantize().apply_(model, {"used": INT8_STATIC, "unused": INT8_STATIC}, context))
    assert "not calibrated" in changes[1].detail and "no input" in context.warnings[0]


# ---------------------------------------------------------------- storage arithmetic

@pytest.mark.parametrize("config,expected", [
    (INT8_DYN, 48 * 96 + 4 * 48 + 4 * 48),
    (INT8_STATIC, 48 * 96 + 4 * 48 + 4 * 48 + 4 + 1),
    (INT8_TENSOR, 48 * 96 + 4 + 4 * 48),
    (INT4_G32, math.ceil(48 * 96 / 2) + 4 * 48 * 3 + 4 * 48),
    (QuantizeConfig(dtype="int4", group_size=128), math.ceil(48 * 96 / 2) + 4 * 48 * 1 + 4 * 48),
    (FP16, 2 * (48 * 96 + 48)),
])
def test_linear_storage_formula(config, expected):
    layer = nn.Linear(96, 48)
    q = quantize_module(copy.deepcopy(layer), config)
    assert q.weight_storage_bytes() == expected
    assert sum(a.nbytes for a in q.storage_arrays()) == expected  # what an exported file holds
    estimate = Estimate(params=48 * 97, bytes=4 * 48 * 97, flops=12345, nonzero=4000)
    projected = Quantize().project(layer, config, estimate)
    assert projected == Estimate(48 * 97, expected, 12345, 4000)


@pytest.mark.parametrize("config", [INT8_DYN, INT8_TENSOR, INT4_G32, FP16])
def test_conv_storage_formula(config):
    conv = nn.Conv2d(16, 16, 3, groups=16, bias=False)  # depthwise: fan-in 9 per channel
    q = quantize_module(conv, config)
    expected = {"int8": 144 + 4 * (16 if config.per_channel else 1), "int4": 72 + 4 * 16,
                "fp16": 288}[config.dtype]
    assert q.weight_storage_bytes() == expected == sum(a.nbytes for a in q.storage_arrays())


def test_storage_bytes_of_float_model_counts_unique_tensors():
    embed = nn.Embedding(50, 16)
    head = nn.Linear(16, 50, bias=False)
    head.weight = embed.weight  # tied
    model = nn.Sequential(embed, nn.LayerNorm(16), head, nn.BatchNorm1d(10))
    model[3].register_buffer("scratch", torch.zeros(1000), persistent=False)
    unique = {id(t): t for t in list(model.parameters()) + [b for k, b in model.state_dict(keep_vars=True).items()
                                                            if not k.endswith("scratch")]}
    assert storage_bytes(model) == sum(t.nbytes for t in unique.values())


# ---------------------------------------------------------------- config and technique contract

@pytest.mark.parametrize("config", [INT8_DYN, INT8_STATIC, INT8_TENSOR, INT8_WONLY, INT4_G32, FP16,
                                    QuantizeConfig(dtype="int4", group_size=8)])
def test_config_round_trip(config):
    data = config.to_dict()
    assert QuantizeConfig.from_dict(data) == config
    assert config.problems() == []


def test_config_summaries_and_weight_only_normalization():
    assert [c.summary() for c in (INT8_DYN, INT8_STATIC, INT4_G32, FP16, INT8_WONLY, INT8_TENSOR)] == [
        "int8 w/a-dyn", "int8 w/a-static", "int4 g32", "fp16", "int8 w-only", "int8 w/a-dyn per-tensor"]
    assert QuantizeConfig(dtype="int4") == QuantizeConfig(dtype="int4", activations=None)
    assert QuantizeConfig.from_dict({"dtype": "int8", "activations": None}).activations is None


@pytest.mark.parametrize("data,fragments", [
    ({"dtype": "int3"}, ["'int3'", "int8 (8-bit)", "int4 (4-bit)", "fp16 (16-bit)"]),
    ({"dtype": "int4", "activations": "static"}, ["int4 keeps float activations", "use dtype int8"]),
    ({"dtype": "int4", "group_size": 12}, ["group_size 12", "power of two"]),
    ({"dtype": "int4", "group_size": 4}, ["group_size 4", "at least 8"]),
    ({"activations": "weekly"}, ["'weekly'", "dynamic"]),
    ({"per_channel": "yes"}, ["per_channel"]),
])
def test_config_problems(data, fragments):
    problems = "\n".join(QuantizeConfig(**data).problems())
    assert all(fragment in problems for fragment in fragments), problems
    with pytest.raises(StudioError) as info:  # recipes fail where they are read
        QuantizeConfig.from_dict(data)
    assert all(fragment in str(info.value) for fragment in fragments)


def test_unknown_config_key_is_rejected():
    with pytest.raises(StudioError, match="unknown key"):
        QuantizeConfig.from_dict({"bits": 8})


def test_registry_and_supports():
    technique = TECHNIQUES["quantize"]
    assert isinstance(technique, Quantize) and technique.order == 2 and technique.config_type is QuantizeConfig

    class MyLinear(nn.Linear):
        pass

    assert technique.supports(nn.Linear(2, 2)) and technique.supports(nn.Conv2d(2, 2, 1))
    assert technique.supports(MyLinear(2, 2))
    assert not technique.supports(nn.Conv1d(2, 2, 1)) and not technique.supports(nn.ReLU())
    assert not technique.supports(quantize_module(nn.Linear(2, 2), INT8_DYN))
    assert not technique.supports(nn.MultiheadAttention(8, 2).out_proj)  # MHA reads its weight directly
    assert technique.check("fc", nn.Linear(200, 3), QuantizeConfig(dtype="int4")) == []  # ragged group is fine
    assert "not floating point" in technique.check("fc", _int_layer(), INT8_DYN)[0]


def _int_layer() -> nn.Module:
    layer = nn.Linear(2, 2)
    layer.weight = nn.Parameter(torch.zeros(2, 2, dtype=torch.int8), requires_grad=False)
    return layer


@pytest.mark.parametrize("config", [INT8_DYN, INT8_STATIC])
def test_cancel_before_apply_raises(config):
    token = CancelToken()
    token.cancel()
    model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(Cancelled):
        list(Quantize().apply_(model, {"0": config}, ApplyContext(example_inputs=((torch.randn(1, 4),), {}),
                                                                 cancel=token)))
    assert type(model[0]) is nn.Linear


def test_cancel_during_calibration_raises():
    token = CancelToken()

    def batches():
        yield (torch.randn(2, 4),), {}
        token.cancel()
        yield (torch.randn(2, 4),), {}

    layer = QuantLinear.from_float(nn.Linear(4, 4), INT8_STATIC)
    model = nn.Sequential(layer).train()
    with pytest.raises(Cancelled):
        calibrate_(model, ApplyContext(example_inputs=((torch.randn(1, 4),), {}), calibration=batches, cancel=token))
    assert layer._observer is None and not layer.calibrated and layer.training
