"""Realized int4 (techniques/int4_packed): packed bytes are the formula's, outputs are the
simulated int4's, a compressed folder holds the packed codes and reopens to the same outputs,
compressing never copies or changes the original, and perplexity is measured before/after."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from studio.core.base.events import Finished
from studio.core.model.measure import stored_bytes
from studio.core.pipelines.compress import compress
from studio.core.plan import CompressionPlan
from studio.core.techniques import int4_packed
from studio.core.techniques.int4_packed import PackedInt4Linear, pack_nibbles, unpack_nibbles
from studio.core.techniques.quant_modules import QuantLinear, int4_codes, quantized_storage_bytes
from studio.core.techniques.quantization import QuantizeConfig, quantize_module

pytestmark = pytest.mark.skipif(not int4_packed.kernel_available(), reason="this torch has no CPU int4 kernel")

SHAPES = [(256, 96, 32, True), (576, 192, 64, False), (200, 40, 64, True), (40, 10, 128, True)]  # K, N, group, bias


def _layer(k: int, n: int, bias: bool) -> nn.Linear:
    torch.manual_seed(k + n)
    return nn.Linear(k, n, bias=bias)


@pytest.mark.parametrize("k, n, group, bias", SHAPES)
def test_packed_bytes_match_the_formula(k, n, group, bias):
    config = QuantizeConfig(dtype="int4", group_size=group)
    layer = quantize_module(_layer(k, n, bias), config)
    assert isinstance(layer, PackedInt4Linear)
    expected = math.ceil(n * k / 2) + 4 * n * math.ceil(k / group) + (4 * n if bias else 0)
    assert expected == quantized_storage_bytes(n, k, n if bias else 0, config)
    assert stored_bytes(layer) == layer.weight_storage_bytes() == expected
    state = layer.state_dict()
    assert set(state) == {"codes", "scales"} | ({"bias"} if bias else set())
    assert sum(t.numel() * t.element_size() for t in state.values()) == expected
    assert state["codes"].dtype == torch.uint8 and state["codes"].numel() == math.ceil(n * k / 2)
    # parameters are still parameters: the codes count as the weights they are
    assert sum(p.numel() for p in layer.parameters()) == n * k + (n if bias else 0)


@pytest.mark.parametrize("k, n, group, bias", SHAPES)
def test_outputs_match_the_simulated_int4_layer(k, n, group, bias):
    float_layer = _layer(k, n, bias)
    config = QuantizeConfig(dtype="int4", group_size=group)
    packed = quantize_module(float_layer, config)
    simulated = QuantLinear.from_float(float_layer, config)
    x = torch.randn(3, 5, k)
    with torch.no_grad():
        reference = simulated(x)
        out = packed(x)
        codes, _ = int4_codes(float_layer.weight, group)
        assert torch.equal(packed.qweight, codes.to(torch.int8))  # the same grid, the same codes
        assert torch.allclose(packed.weight, simulated.quantized_weight(), rtol=0, atol=1e-6)
        assert out.shape == reference.shape
        # the kernel runs in bf16 (activations and scales rounded to 8 significant bits)
        assert (out - reference).abs().max() <= 0.02 * float(reference.abs().max())
        assert torch.nn.functional.cosine_similarity(out.flatten(), reference.flatten(), dim=0) > 0.9999
        assert out.dtype == torch.float32 and packed(x.bfloat16()).dtype == torch.bfloat16
    # gradients reach the input (the kernel has none; the float path takes over) and not the codes
    x.requires_grad_(True)
    packed(x).sum().backward()
    expected = torch.ones(3, 5, n) @ simulated.quantized_weight().detach()
    assert torch.allclose(x.grad, expected, atol=1e-4) and not packed.qweight.requires_grad


def test_nibbles_round_trip_and_chunked_packing_is_the_whole(monkeypatch):
    codes = torch.randint(-8, 8, (37, 24), dtype=torch.int8)
    assert torch.equal(unpack_nibbles(pack_nibbles(codes), (37, 24)), codes)
    layer = quantize_module(_layer(128, 300, False), QuantizeConfig(dtype="int4", group_size=32))
    whole = layer._pack(304, 128)
    monkeypatch.setattr(int4_packed, "ROWS", 64)
    assert torch.equal(layer._pack(304, 128), whole)


def test_kernel_refusals_fall_back_to_simulation_with_a_warning():
    from studio.core.techniques.base import ApplyContext
    from studio.core.techniques.quantization import Quantize

    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 8))
    config = QuantizeConfig(dtype="int4", group_size=16)  # the kernel takes 32..256
    context = ApplyContext(example_inputs=((torch.randn(1, 64),), {}))
    changes = list(Quantize().apply_(model, {"0": config, "2": config}, context))
    assert all(type(m) is QuantLinear for m in (model[0], model[2]))
    assert "simulated in float" in changes[0].detail
    assert any("not packed" in w and "groups of 32" in w for w in context.warnings)


class TinyLM(nn.Module):
    """Tied output layer (as in most small LMs) and Linears of kernel-friendly sizes."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 64)
        self.blocks = nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 64))
        self.head = nn.Linear(64, 50, bias=False)
        self.head.weight = self.embed.weight

    def forward(self, ids):
        return self.head(self.blocks(self.embed(ids)))


@pytest.fixture()
def tiny_lm():
    from studio.core.model.input_spec import InputSpec
    from studio.core.model.loaded_model import LoadedModel

    torch.manual_seed(0)
    return LoadedModel(module=TinyLM().eval(), name="tiny", source="tiny", kind="test",
                       input_spec=InputSpec.parse("1x12 int64 [0,50)"))


INT4_ALL = {"rules": [{"layers": "*", "quantize": {"dtype": "int4", "group_size": 32}},
                      {"layers": "embed", "quantize": None}]}


def _compress(loaded, plan=INT4_ALL):
    return next(e for e in compress(loaded, CompressionPlan.from_dict(plan)) if isinstance(e, Finished)).result


def test_compressing_neither_copies_nor_changes_the_original(tiny_lm):
    original = tiny_lm.module
    before = {k: v.clone() for k, v in original.state_dict().items()}
    tensors = {k: v for k, v in original.named_parameters()}
    result = _compress(tiny_lm)
    model = result.compressed
    assert all(isinstance(model.get_submodule(n), PackedInt4Linear) for n in ("blocks.0", "blocks.2", "head"))
    assert model.embed is original.embed  # untouched layers are shared, not copied
    assert isinstance(original.head, nn.Linear) and original.head.weight is original.embed.weight  # tie kept
    assert all(type(original.blocks[i]) is nn.Linear for i in (0, 2))
    assert {k: v for k, v in original.named_parameters()}.keys() == tensors.keys()
    assert all(v is tensors[k] for k, v in original.named_parameters())
    assert all(torch.equal(before[k], v) for k, v in original.state_dict().items())
    report = result.report
    # the codes count as the weights; the tied head now holds its own codes, and says so
    assert report.after.params == report.before.params + 50 * 64
    assert any("unties" in w and "head" in w for w in report.warnings)
    linear_bytes = sum(quantized_storage_bytes(o, i, b, QuantizeConfig(dtype="int4", group_size=32))
                       for o, i, b in ((128, 64, 128), (64, 128, 64), (50, 64, 0)))
    assert report.after.bytes == 50 * 64 * 4 + linear_bytes  # the (no longer tied) table stays fp32
    assert report.after.flops == report.before.flops  # the logical products, not the kernel's padded rows


def test_folder_holds_packed_codes_and_reopens_without_requantizing(tiny_lm, tmp_path, monkeypatch):
    from safetensors import safe_open

    from studio.core.pipelines.compressed_dir import load_compressed_dir, save_compressed

    result = _compress(tiny_lm)
    out = save_compressed(result, tmp_path / "int4")
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        assert {"head.codes", "head.scales", "blocks.0.codes", "blocks.2.codes"} <= keys
        assert not {"head.weight", "blocks.0.weight"} & keys
        assert f.get_tensor("blocks.0.codes").numel() == 128 * 64 // 2
    # reopening fills empty packed layers from the file: quantizing again would fail here
    def no_quantizing(*args):
        raise AssertionError("re-quantized")

    monkeypatch.setattr(int4_packed, "int4_codes", no_quantizing)
    reopened = load_compressed_dir(out, open_original=lambda request: tiny_lm)
    assert isinstance(reopened.module.head, PackedInt4Linear)
    ids = torch.randint(0, 50, (3, 12))
    with torch.no_grad():
        assert torch.equal(reopened.module(ids), result.compressed(ids))


def test_folder_saved_with_simulated_int4_still_opens():
    """Folders written when int4 was simulated hold float weights: they are quantized on load."""
    layer = quantize_module(_layer(64, 32, True), QuantizeConfig(dtype="int4", group_size=32))
    simulated = QuantLinear.from_float(_layer(64, 32, True), QuantizeConfig(dtype="int4", group_size=32))
    keys = layer.load_state_dict(simulated.state_dict(), strict=True)
    assert not keys.missing_keys and not keys.unexpected_keys
    assert torch.allclose(layer.weight, simulated.quantized_weight().detach(), rtol=0, atol=1e-6)
