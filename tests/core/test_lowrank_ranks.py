"""Rank arithmetic of low-rank factorization: break-even ranks, rank fractions, energy
thresholds and VBMF rank suggestions (split from test_lowrank.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from studio.core.base.errors import StudioError
from studio.core.techniques.lowrank import (LowRankConfig, Ranks, break_even_rank, choose_ranks, evbmf_rank,
                                            factored_params, kept_energy, rank_for_energy, rank_for_fraction,
                                            suggest_rank, suggest_ranks)
from studio.core.techniques.lowrank_math import unfolding_singular_values
from tests.core.lowrank_helpers import noisy_low_rank, params, seeded


# --- rank arithmetic ------------------------------------------------------------------------

@pytest.mark.parametrize("shape,method", [
    ((384, 1536), "svd"), ((1536, 384), "svd"), ((64, 64), "svd"), ((5, 7, 1, 1), "svd"), ((64, 32, 1, 1), "svd"),
    ((16, 8, 3, 3), "tucker"), ((64, 32, 3, 3), "tucker"), ((7, 300, 3, 3), "tucker"), ((5, 7, 1, 1), "tucker"),
    ((16, 8, 3, 3), "cp"), ((64, 32, 3, 3), "cp"), ((4, 4, 5, 5), "cp"),
])
def test_break_even_rank_is_exact(shape, method):
    """The largest rank with fewer weights than the dense layer, found from the formulas."""
    limit = break_even_rank(shape, method)
    dense = int(np.prod(shape))

    def single(rank: int) -> tuple[int, int]:
        return (min(rank, shape[0]), min(rank, shape[1])) if method == "tucker" else (rank, rank)

    assert limit >= 1
    assert factored_params(shape, method, single(limit)) < dense <= factored_params(shape, method, single(limit + 1))


def test_break_even_known_value():
    assert break_even_rank(nn.Linear(1536, 384), "svd") == 307  # 384·1536 / (384 + 1536) = 307.2


@pytest.mark.parametrize("layer,method", [(nn.Linear(64, 32), "svd"), (nn.Linear(300, 500, bias=False), "svd"),
                                          (nn.Conv2d(32, 16, 1), "svd"), (nn.Conv2d(16, 32, 3), "cp"),
                                          (nn.Conv2d(16, 32, 3), "tucker")])
@pytest.mark.parametrize("fraction", [0.2, 0.5])
def test_rank_fraction_fills_the_budget(layer, method, fraction):
    seeded(layer)
    ranks = choose_ranks(layer, LowRankConfig(method=method, rank_fraction=fraction))
    bias = params(layer) - layer.weight.numel()
    budget = fraction * params(layer)
    assert factored_params(layer, method, ranks) + bias <= budget
    out, inp = layer.weight.shape[:2]
    if method == "tucker":  # neither mode can grow (a mode at its channel count cannot)
        grown = [g for g in (Ranks(ranks.out + 1, ranks.inp), Ranks(ranks.out, ranks.inp + 1))
                 if g.out <= out and g.inp <= inp]
    else:
        grown = [Ranks(ranks.out + 1, ranks.out + 1)]
    assert all(factored_params(layer, method, g) + bias > budget for g in grown)
    if method != "tucker":
        assert ranks.out == rank_for_fraction(layer, method, fraction, bias)


@pytest.mark.parametrize("energy", [0.5, 0.9, 0.99])
def test_energy_rank_is_the_smallest_that_keeps_it(energy):
    linear = seeded(nn.Linear(80, 60))
    s = unfolding_singular_values(linear.weight)
    rank = choose_ranks(linear, LowRankConfig(energy=energy)).out
    assert kept_energy(s, rank) >= energy > kept_energy(s, rank - 1)
    assert rank_for_energy(np.array([4.0, 2.0, 1.0, 1.0]), 0.8) == 2
    assert rank_for_energy(np.array([4.0, 2.0, 1.0, 1.0]), 1.0) == 4


def test_tucker_energy_ranks_follow_each_unfolding():
    torch.manual_seed(0)
    a, b, core = torch.randn(24, 5), torch.randn(16, 3), torch.randn(5, 3, 3, 3)
    conv = nn.Conv2d(16, 24, 3)
    conv.weight.data = torch.einsum("oa,abhw,ib->oihw", a, core, b)  # Tucker ranks (5, 3)
    assert choose_ranks(conv, LowRankConfig(method="tucker", energy=0.999999)) == (5, 3)
    assert suggest_ranks(conv, "tucker", by="energy", energy=0.999999) == (5, 3)


def _graded_spectrum(scale: float) -> np.ndarray:
    """Signal strengths from well above to below the noise edge (~32): the hard case for VBMF."""
    rng = np.random.default_rng(0)
    u = np.linalg.qr(rng.standard_normal((150, 30)))[0]
    v = np.linalg.qr(rng.standard_normal((400, 30)))[0]
    matrix = (u * np.geomspace(60, 5, 30)) @ v.T + rng.standard_normal((150, 400))
    return np.linalg.svd(matrix * scale, compute_uv=False)


@pytest.mark.parametrize("rows,cols,rank,noise", [(200, 300, 10, 0.5), (128, 512, 24, 1.0), (300, 100, 7, 0.8)])
def test_vbmf_recovers_the_rank_under_noise(rows, cols, rank, noise):
    assert suggest_rank(noisy_low_rank(rows, cols, rank, noise), by="vbmf") == rank
    assert suggest_rank(noisy_low_rank(rows, cols, rank, noise, scale=0.01), by="vbmf") == rank


def test_vbmf_does_not_depend_on_the_weight_scale():
    """Trained weights are small (σ² ~ 1e-6): a search with absolute tolerances (as in the
    common EVBMF script) gives 16 here at scale 1e-3 but 9 at scale 1; the normalised search
    gives the same rank at every scale, and it is the one the script finds at scale 1."""
    ranks = {evbmf_rank(_graded_spectrum(scale), 150, 400) for scale in (1.0, 1e-3, 1e-6)}
    assert ranks == {9}
    s = unfolding_singular_values(noisy_low_rank(200, 300, 10, 0.5).weight)
    assert evbmf_rank(s, 200, 300) == evbmf_rank(s * 1e-3, 300, 200) == 10
    assert evbmf_rank(s[:50], 200, 300, total_energy=float((s ** 2).sum())) == 10  # truncated spectrum


def test_suggest_rank_rejects_unknown_rule():
    with pytest.raises(StudioError, match="energy, vbmf"):
        suggest_rank(nn.Linear(4, 4), by="aic")
