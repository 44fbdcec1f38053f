"""Low-rank technique: parameter formulas, full-rank reconstruction, rank choice (fraction,
energy, break-even, VBMF), checks, projection against the real result, and apply_."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from studio.core.base.cancel import CancelToken, Cancelled
from studio.core.base.errors import StudioError
from studio.core.plan import CompressionPlan, PlanError
from studio.core.plan.resolve import resolve
from studio.core.techniques.base import Estimate
from studio.core.techniques.lowrank import (CPConv2d, LowRankConfig, LowRankConv1x1, LowRankLinear, TuckerConv2d,
                                            choose_ranks, factored_params, factorized_weight, kept_energy)
from studio.core.techniques.lowrank_math import unfolding_singular_values
from studio.core.techniques.lowrank_methods import flops_ratio
from studio.core.techniques.lowrank_methods.cp import cp_decompose
from tests.core.lowrank_helpers import LOWRANK, apply, noisy_low_rank, params, seeded


# --- config ---------------------------------------------------------------------------------

@pytest.mark.parametrize("data,fragment", [
    ({"method": "qr", "rank": 4}, "method 'qr'"),
    ({"rank": 4, "energy": 0.9}, "not rank and energy"),
    ({"rank": 0}, "positive integer"),
    ({"rank": True}, "positive integer"),
    ({"rank_fraction": 1.0}, "strictly between 0 and 1"),
    ({"rank_fraction": 0.0}, "strictly between 0 and 1"),
    ({"energy": 1.2}, "within (0, 1]"),
    ({"energy": 0.9, "solver": "lanczos"}, "solver 'lanczos'"),
])
def test_config_problems(data, fragment):
    assert any(fragment in p for p in LowRankConfig.from_dict(data).problems())


@pytest.mark.parametrize("data,summary", [
    ({"rank": 32}, "svd r=32"), ({"method": "tucker", "rank_fraction": 0.5}, "tucker 50% params"),
    ({"method": "cp", "energy": 0.9}, "cp energy 0.9"), ({"energy": 1.0}, "svd energy 1"), ({}, "svd energy 0.9"),
])
def test_config_round_trip_and_summary(data, summary):
    config = LowRankConfig.from_dict(data)
    assert not config.problems()
    assert LowRankConfig.from_dict(config.to_dict()) == config
    assert config.summary() == summary
    with pytest.raises(StudioError, match="unknown key"):
        LowRankConfig.from_dict({**data, "ranks": 3})


# --- parameter formulas and full-rank reconstruction ------------------------------------------

@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("m,n,r", [(32, 64, 8), (100, 30, 5)])
def test_svd_linear_params_and_full_rank(m, n, r, bias):
    linear = seeded(nn.Linear(n, m, bias=bias))
    assert params(LowRankLinear.from_linear(linear, r)) == r * (m + n) + (m if bias else 0)
    full = LowRankLinear.from_linear(linear, min(m, n), "exact")
    x = torch.randn(7, n)
    torch.testing.assert_close(full(x), linear(x), atol=1e-4, rtol=0)


@pytest.mark.parametrize("stride,padding", [(1, 0), (2, 1)])
def test_svd_pointwise_conv_params_and_full_rank(stride, padding):
    conv = seeded(nn.Conv2d(16, 24, 1, stride=stride, padding=padding))
    x = torch.randn(2, 16, 9, 9)
    torch.testing.assert_close(LowRankConv1x1.from_conv(conv, 16)(x), conv(x), atol=1e-4, rtol=0)
    assert params(LowRankConv1x1.from_conv(conv, 4)) == 4 * (16 + 24) + 24


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 1, 1), (1, 2, 2)])
def test_tucker_params_and_full_rank(stride, padding, dilation):
    conv = seeded(nn.Conv2d(12, 20, 3, stride=stride, padding=padding, dilation=dilation))
    x = torch.randn(2, 12, 11, 11)
    torch.testing.assert_close(TuckerConv2d.from_conv(conv, 20, 12)(x), conv(x), atol=1e-4, rtol=0)
    small = TuckerConv2d.from_conv(conv, 6, 4)
    assert params(small) == 12 * 4 + 4 * 6 * 3 * 3 + 6 * 20 + 20 == factored_params(conv, "tucker", (6, 4)) + 20
    assert small(x).shape == conv(x).shape


def _cp_through_apply(conv: nn.Conv2d, rank: int) -> tuple[nn.Module, int]:
    model = nn.Sequential(copy.deepcopy(conv))
    changes, _ = apply(model, {"0": LowRankConfig(method="cp", rank=rank)})
    assert not changes[0].skipped
    return model[0], changes[0].params_after


def _relative_output_error(layer: nn.Module, conv: nn.Conv2d, x: torch.Tensor) -> float:
    with torch.no_grad():
        reference = conv(x)
        return float((layer(x) - reference).norm() / reference.norm())


def test_cp_params_and_approximation_of_a_random_kernel():
    """CP has no closed form and a random kernel has no low-rank structure, so even the largest
    rank that saves parameters (85 here) only approximates: measured 15% relative output error
    at R=80 (tensorly's parafac: 18%) and 81% at R=16."""
    conv = seeded(nn.Conv2d(16, 32, 3, padding=1))
    x = torch.randn(2, 16, 12, 12)
    cp, after = _cp_through_apply(conv, 80)
    assert isinstance(cp, CPConv2d) and params(cp) == after == 80 * (16 + 3 + 3 + 32) + 32
    coarse, _ = _cp_through_apply(conv, 16)
    assert _relative_output_error(cp, conv, x) < 0.25 < 0.6 < _relative_output_error(coarse, conv, x)


@pytest.mark.parametrize("kernel,stride,padding,dilation", [((3, 3), 1, 1, 1), ((3, 5), 2, (1, 2), 1),
                                                            ((3, 3), 1, 2, 2)])
def test_cp_recovers_a_kernel_of_low_cp_rank(kernel, stride, padding, dilation):
    """A kernel made of 12 CP components plus 1% noise: rank 12 reproduces the conv (within the
    noise), with stride, uneven padding and dilation carried by the separable convs."""
    generator = torch.Generator().manual_seed(2)
    kh, kw = kernel
    factors = [torch.randn(size, 12, generator=generator) for size in (32, 16, kh, kw)]
    conv = nn.Conv2d(16, 32, kernel, stride=stride, padding=padding, dilation=dilation)
    weight = torch.einsum("or,ir,hr,wr->oihw", *factors)
    conv.weight.data = weight + 0.01 * weight.std() * torch.randn(weight.shape, generator=generator)
    cp, after = _cp_through_apply(conv, 12)
    assert after == 12 * (16 + kh + kw + 32) + 32
    assert _relative_output_error(cp, conv, torch.randn(2, 16, 13, 13)) < 0.03


def test_cp_decompose_is_exact_when_the_rank_allows():
    """A kernel built from 6 CP components is recovered (up to ALS convergence) at rank 6."""
    torch.manual_seed(1)
    factors = [torch.randn(size, 6, dtype=torch.float64) for size in (10, 7, 3, 3)]
    kernel = torch.einsum("or,ir,hr,wr->oihw", *factors)
    recovered = torch.einsum("or,ir,hr,wr->oihw", *cp_decompose(kernel, 6, n_iter_max=500, tol=1e-12))
    assert float((recovered - kernel).norm() / kernel.norm()) < 1e-4


# --- checks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("module,config,fragment", [
    (nn.Conv2d(8, 8, 3), LowRankConfig(method="svd", rank=2), "use tucker or cp for 3x3 kernels"),
    (nn.Linear(8, 8), LowRankConfig(method="tucker", rank=2), "use svd"),
    (nn.Linear(8, 8), LowRankConfig(method="cp", rank=2), "use svd"),
    (nn.Linear(1536, 384), LowRankConfig(rank=310),
     "rank 310 saves no parameters for this 384x1536 Linear (largest useful rank is 307)"),
    (nn.Linear(1536, 384), LowRankConfig(rank=400), "exceeds the largest possible rank 384"),
    (nn.Conv2d(16, 32, 3), LowRankConfig(method="cp", rank=10_000), "largest useful rank is"),
    (nn.Conv2d(8, 8, 1, padding=1, padding_mode="reflect"), LowRankConfig(rank=2), "use tucker"),
    (nn.Linear(1, 64), LowRankConfig(rank=1), "no svd rank saves parameters"),
])
def test_check_names_the_reason_and_the_fix(module, config, fragment):
    problems = LOWRANK.check("layer", module, config)
    assert len(problems) == 1 and fragment in problems[0]


@pytest.mark.parametrize("module,config", [(nn.Linear(1536, 384), LowRankConfig(rank=307)),
                                           (nn.Conv2d(32, 32, 3), LowRankConfig(method="tucker", rank_fraction=0.3)),
                                           (nn.Conv2d(32, 32, 1), LowRankConfig(method="svd", energy=0.8))])
def test_check_accepts_useful_settings(module, config):
    assert LOWRANK.check("layer", module, config) == []


@pytest.mark.parametrize("module,supported", [
    (nn.Linear(4, 4), True), (nn.Conv2d(4, 4, 3), True), (nn.Conv2d(4, 4, 3, groups=4), False),
    (nn.Conv2d(4, 4, 3, groups=2), False), (nn.Conv1d(4, 4, 3), False),
    (nn.MultiheadAttention(8, 2).out_proj, False),  # its owner reads .weight directly
    (LowRankLinear.from_linear(nn.Linear(4, 4), 2), False),
])
def test_supports(module, supported):
    assert LOWRANK.supports(module) is supported


def test_check_model_flags_tied_and_shared_layers():
    from tests.zoo import TiedLM

    tied = LOWRANK.check_model(TiedLM(), {"lm_head": LowRankConfig(rank=4), "body.0": LowRankConfig(rank=4)}, ((), {}))
    assert len(tied) == 1 and "layer lm_head: lowrank: its weight is tied to embed" in tied[0]
    shared = nn.Linear(8, 8)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert "also used as 2" in LOWRANK.check_model(model, {"0": LowRankConfig(rank=2)}, ((), {}))[0]


def test_resolve_surfaces_checks_as_plan_errors():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 64), nn.Linear(64, 64))
    plan = CompressionPlan.from_dict({"version": 1, "rules": [
        {"layers": "0", "lowrank": {"method": "svd", "rank": 2}},
        {"layers": "3", "lowrank": {"method": "svd", "rank": 8}},
        {"layers": "4", "lowrank": {"method": "svd", "rank": 16}},
    ]})
    with pytest.raises(PlanError) as caught:
        resolve(plan, model)
    text = "\n".join(caught.value.problems)
    assert "layer 0: lowrank: svd applies to Linear and 1x1 Conv2d; use tucker or cp for 3x3 kernels" in text
    assert "layer 3: lowrank: rank 8 saves no parameters for this 64x8 Linear (largest useful rank is 7)" in text
    assert "layer 4:" not in text
    fine = CompressionPlan.from_dict({"version": 1, "rules": [{"layers": "4", "lowrank": {"rank": 16}}]})
    assert set(resolve(fine, model)["lowrank"]) == {"4"}


# --- solvers ----------------------------------------------------------------------------------

def test_randomized_and_exact_svd_agree_on_a_low_rank_matrix():
    linear = noisy_low_rank(400, 600, 12, 1e-3)
    x = torch.randn(16, 600)
    exact = LowRankLinear.from_linear(linear, 12, "exact")
    randomized = LowRankLinear.from_linear(linear, 12, "randomized")
    with torch.no_grad():
        reference, fast, slow = linear(x), randomized(x), exact(x)
    assert float((fast - slow).norm() / reference.norm()) < 1e-4
    assert float((slow - reference).norm() / reference.norm()) < 1e-3


# --- projection agrees with the result ----------------------------------------------------------

@pytest.mark.parametrize("module,config", [
    (nn.Linear(96, 64), LowRankConfig(rank=16)),
    (nn.Linear(96, 64, bias=False), LowRankConfig(energy=0.8)),
    (nn.Conv2d(48, 32, 1, stride=2), LowRankConfig(rank_fraction=0.4, solver="exact")),
    (nn.Conv2d(16, 32, 3, padding=1), LowRankConfig(method="tucker", rank_fraction=0.5)),
    (nn.Conv2d(16, 32, 3, padding=1), LowRankConfig(method="tucker", energy=0.7)),
    (nn.Conv2d(16, 32, 3, stride=2), LowRankConfig(method="cp", rank_fraction=0.3)),
])
def test_project_matches_apply(module, config):
    seeded(module)
    before = params(module)
    estimate = Estimate(before, before * 4, 1_000_000, before)
    projected = LOWRANK.project(module, config, estimate)
    model = nn.Sequential(copy.deepcopy(module))
    changes, _ = apply(model, {"0": config})
    assert not changes[0].skipped
    assert projected.params == params(model) == changes[0].params_after < before
    assert projected.nonzero == projected.params and projected.bytes == projected.params * 4
    stride = tuple(module.stride) if isinstance(module, nn.Conv2d) else (1, 1)
    ranks = choose_ranks(module, config)
    assert projected.flops == round(1_000_000 * flops_ratio(module, config.method, ranks, stride))
    if config.method == "svd":  # exact for SVD: multiply-adds follow the weights
        assert projected.flops == round(1_000_000 * (projected.params - (before - module.weight.numel()))
                                        / module.weight.numel())


def test_project_leaves_layers_that_would_not_save_unchanged():
    estimate = Estimate(100, 400, 1000, 100)
    assert LOWRANK.project(seeded(nn.Linear(64, 64)), LowRankConfig(energy=1.0), estimate) == estimate
    assert LOWRANK.project(nn.Conv2d(4, 4, 3), LowRankConfig(method="svd", rank=1), estimate) == estimate


# --- apply_ -----------------------------------------------------------------------------------

def test_apply_reports_in_order_skips_and_warns():
    model = seeded(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Conv2d(64, 64, 1), nn.Linear(64, 64)))
    targets = {"0": LowRankConfig(rank=8), "2": LowRankConfig(energy=1.0), "3": LowRankConfig(rank_fraction=0.25)}
    changes, context = apply(model, targets)
    assert [c.name for c in changes] == ["0", "2", "3"]
    assert changes[0].params_after == 8 * 128 + 64 and changes[0].detail.startswith("svd rank 8 (energy 0.")
    assert changes[1].skipped and changes[1].params_after == changes[1].params_before
    assert changes[1].detail == "rank 64 would not save parameters; left dense"
    assert context.warnings == ["2: rank 64 would not save parameters; left dense"]
    assert type(model[2]) is nn.Conv2d and isinstance(model[0], LowRankLinear) and isinstance(model[3], LowRankLinear)
    assert [n for n, _ in model[0].named_children()] == ["first", "second"]


def test_apply_reports_the_energy_it_keeps():
    linear = seeded(nn.Linear(48, 32))
    model = nn.Sequential(linear)
    changes, _ = apply(model, {"0": LowRankConfig(rank=10, solver="exact")})
    expected = kept_energy(unfolding_singular_values(linear.weight), 10)
    assert changes[0].detail == f"svd rank 10 (energy {expected:.2f})"
    weight = linear.weight.detach()
    error = (factorized_weight(model[0]) - weight).norm() ** 2 / weight.norm() ** 2
    assert abs(float(1 - error) - expected) < 1e-5


def test_apply_honours_cancel():
    token = CancelToken()
    token.cancel()
    model = nn.Sequential(nn.Linear(16, 16))
    with pytest.raises(Cancelled):
        apply(model, {"0": LowRankConfig(rank=2)}, cancel=token)
    assert type(model[0]) is nn.Linear


def test_apply_refuses_a_setting_check_rejects():
    with pytest.raises(StudioError, match="use tucker or cp"):
        apply(nn.Sequential(nn.Conv2d(4, 4, 3)), {"0": LowRankConfig(method="svd", rank=1)})


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_apply_keeps_dtype_and_mode(dtype):
    model = seeded(nn.Sequential(nn.Linear(32, 32), nn.Conv2d(8, 8, 3))).to(dtype).eval()
    apply(model, {"0": LowRankConfig(rank=4), "1": LowRankConfig(method="tucker", rank=2)})
    assert {p.dtype for p in model.parameters()} == {dtype} and not model[0].training
    assert model[0](torch.randn(2, 32, dtype=dtype)).dtype == dtype


def test_bert_block_svd():
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=1, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=32)
    torch.manual_seed(0)
    model = BertModel(config).eval()
    ids = torch.randint(0, 100, (2, 12))
    with torch.no_grad():
        before = model(input_ids=ids).last_hidden_state
    names = ["encoder.layer.0.intermediate.dense", "encoder.layer.0.output.dense"]

    small = copy.deepcopy(model)
    changes, _ = apply(small, {n: LowRankConfig(rank=16) for n in names})
    assert [c.params_after for c in changes] == [16 * (64 + 128) + 128, 16 * (128 + 64) + 64]
    assert params(model) - params(small) == (128 * 64 - 16 * 192) * 2
    with torch.no_grad():
        assert small(input_ids=ids).last_hidden_state.shape == before.shape

    full = copy.deepcopy(model)
    for name in names:  # rank 64 saves nothing, so build the full-rank layers directly
        full.set_submodule(name, LowRankLinear.from_linear(full.get_submodule(name), 64, "exact"))
    with torch.no_grad():
        torch.testing.assert_close(full(input_ids=ids).last_hidden_state, before, atol=1e-4, rtol=0)


def test_factorized_layers_keep_the_geometry_model_code_reads():
    """Hugging Face MobileNetV2 pads TF-style from its conv's stride/kernel/dilation: `*` SVD (1x1
    convs, the classifier) and Tucker on the strided 3x3 stem must run (they failed: no `stride`)."""
    from transformers import MobileNetV2Config, MobileNetV2ForImageClassification

    from studio.core.base.events import Finished
    from studio.core.model.input_spec import InputSpec
    from studio.core.model.loaded_model import LoadedModel
    from studio.core.pipelines.compress import compress

    torch.manual_seed(0)
    config = MobileNetV2Config(image_size=32, depth_multiplier=0.35, num_labels=3)
    assert config.tf_padding  # the code path that reads the conv's geometry
    model = MobileNetV2ForImageClassification(config).eval()
    loaded = LoadedModel(model, "mobilenet-v2", "mobilenet-v2", "huggingface",
                         InputSpec.parse("pixel_values 2x3x32x32 float32"))
    stem = "mobilenet_v2.conv_stem.first_conv.convolution"
    plan = CompressionPlan.from_dict({"rules": [
        {"layers": "*", "lowrank": {"method": "svd", "rank": 4}},
        {"layers": stem, "lowrank": {"method": "tucker", "rank": 2}}]})
    result = next(e.result for e in compress(loaded, plan) if isinstance(e, Finished))
    modules = dict(result.compressed.named_modules())
    original = dict(model.named_modules())
    factored = [n for n, m in modules.items() if isinstance(m, (LowRankConv1x1, TuckerConv2d, LowRankLinear))]
    assert stem in factored and len(factored) > 10
    for name in factored:
        for attr in ("stride", "kernel_size", "dilation", "padding", "in_channels", "out_channels", "groups") \
                if isinstance(modules[name], (LowRankConv1x1, TuckerConv2d)) else ("in_features", "out_features"):
            assert getattr(modules[name], attr) == getattr(original[name], attr), (name, attr)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits = result.compressed(pixel_values=x).logits
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
