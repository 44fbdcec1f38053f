"""Rank reduction: parameter formulas, full-rank reconstruction, rank choice, checks."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from studio.core.base.cancel import CancelToken, Cancelled
from studio.core.techniques.base import ApplyContext
from studio.core.techniques.lowrank import (LowRank, LowRankConfig, break_even_rank, choose_ranks, evbmf_rank,
                                            rank_for_energy, suggest_rank)
from studio.core.techniques.lowrank_layers import CPConv2d, LowRankConv1x1, LowRankLinear, TuckerConv2d

torch.manual_seed(0)


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("m,n,r", [(32, 64, 8), (100, 30, 5)])
def test_svd_param_formula_and_full_rank(m, n, r, bias):
    linear = nn.Linear(n, m, bias=bias)
    assert params(LowRankLinear.from_linear(linear, r)) == r * (m + n) + (m if bias else 0)
    full = LowRankLinear.from_linear(linear, min(m, n))
    x = torch.randn(7, n)
    assert torch.allclose(full(x), linear(x), atol=1e-4)


def test_pointwise_conv_svd():
    conv = nn.Conv2d(16, 24, 1, stride=2)
    x = torch.randn(2, 16, 9, 9)
    assert torch.allclose(LowRankConv1x1.from_conv(conv, 16)(x), conv(x), atol=1e-4)
    assert params(LowRankConv1x1.from_conv(conv, 4)) == 4 * (16 + 24) + 24


@pytest.mark.parametrize("stride,padding,dilation", [(1, 1, 1), (2, 1, 1), (1, 2, 2)])
def test_tucker_formula_and_full_rank(stride, padding, dilation):
    conv = nn.Conv2d(12, 20, 3, stride=stride, padding=padding, dilation=dilation)
    x = torch.randn(2, 12, 11, 11)
    full = TuckerConv2d.from_conv(conv, 20, 12)
    assert torch.allclose(full(x), conv(x), atol=1e-4)
    small = TuckerConv2d.from_conv(conv, 6, 4)
    assert params(small) == 12 * 4 + 4 * 6 * 9 + 6 * 20 + 20
    assert small(x).shape == conv(x).shape


def test_cp_formula_and_approximation():
    conv = nn.Conv2d(8, 16, 3, padding=1)
    x = torch.randn(2, 8, 10, 10)
    cp = CPConv2d.from_conv(conv, 48)
    assert params(cp) == 48 * (8 + 3 + 3 + 16) + 16
    rel = float((cp(x) - conv(x)).norm() / conv(x).norm())
    assert rel < 0.5  # CP is approximate; measured ≈ 0.2 for a random kernel at this rank


def test_rank_choice_by_fraction_energy_and_vbmf():
    linear = nn.Linear(64, 32)
    r, _ = choose_ranks(linear, LowRankConfig(rank_fraction=0.5))
    assert r * 96 <= 0.5 * 2048 < (r + 1) * 96
    s = torch.tensor([4.0, 2.0, 1.0, 1.0])
    assert rank_for_energy(s.numpy(), 0.8) == 2 and rank_for_energy(s.numpy(), 1.0) == 4
    u, v = torch.randn(200, 10), torch.randn(10, 300)
    noisy = nn.Linear(300, 200)
    noisy.weight.data = u @ v + 0.5 * torch.randn(200, 300)
    assert suggest_rank(noisy, by="vbmf") == 10
    assert evbmf_rank(torch.linalg.svdvals(noisy.weight.detach()).numpy(), 200, 300) == 10
    assert break_even_rank(nn.Linear(1536, 384), "svd") == 307


def test_checks_name_the_reason():
    technique = LowRank()
    conv3 = nn.Conv2d(8, 8, 3)
    assert "use tucker or cp" in technique.check("c", conv3, LowRankConfig(method="svd", rank=2))[0]
    assert "use svd" in technique.check("l", nn.Linear(8, 8), LowRankConfig(method="tucker", rank=2))[0]
    assert "largest useful rank is 307" in technique.check("l", nn.Linear(384, 1536), LowRankConfig(rank=310))[0]
    assert not technique.supports(nn.Conv2d(8, 8, 3, groups=8))
    assert LowRankConfig(rank=2, energy=0.9).problems() and LowRankConfig(rank_fraction=1.2).problems()


def test_apply_skips_what_would_not_save_and_honours_cancel():
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    context = ApplyContext(example_inputs=((torch.randn(1, 64),), {}))
    changes = list(LowRank().apply_(model, {"0": LowRankConfig(rank=8), "2": LowRankConfig(energy=1.0)}, context))
    assert not changes[0].skipped and changes[0].params_after == 8 * 128 + 64
    assert changes[1].skipped and "left dense" in context.warnings[0]
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        list(LowRank().apply_(copy.deepcopy(model), {"0": LowRankConfig(rank=4)},
                              ApplyContext(example_inputs=((), {}), cancel=token)))


def test_bert_feed_forward_svd():
    from transformers import BertModel

    from tests.zoo import tiny_bert_config

    model = BertModel(tiny_bert_config()).eval()
    ids = torch.randint(0, 120, (1, 12))
    before = model(input_ids=ids).last_hidden_state
    full = copy.deepcopy(model)
    dense = full.encoder.layer[0].intermediate.dense  # 32 -> 64
    full.encoder.layer[0].intermediate.dense = LowRankLinear.from_linear(dense, 32)  # full rank
    assert torch.allclose(full(input_ids=ids).last_hidden_state, before, atol=1e-4)
    targets = {"encoder.layer.0.intermediate.dense": LowRankConfig(rank=8),
               "encoder.layer.1.output.dense": LowRankConfig(rank=8)}
    changes = list(LowRank().apply_(model, targets, ApplyContext(example_inputs=((), {"input_ids": ids}))))
    assert [c.params_after for c in changes] == [8 * (32 + 64) + 64, 8 * (64 + 32) + 32]
    assert model(input_ids=ids).last_hidden_state.shape == before.shape
