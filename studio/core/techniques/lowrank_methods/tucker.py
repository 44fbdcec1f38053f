"""Tucker-2 for Conv2d: 1x1 (in → r_in), a kxk core (r_in → r_out), 1x1 (r_out → out)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from studio.core.techniques.lowrank_layers import TuckerConv2d
from studio.core.techniques.lowrank_math import Ranks, energy_shares, layer_dims, unfolding_singular_values
from studio.core.techniques.lowrank_methods import Dims, LowRankMethod, register_method


@register_method("tucker")
class Tucker(LowRankMethod):
    priority = 1
    layer_classes = (TuckerConv2d,)

    def problem(self, module: nn.Module) -> str | None:
        if not isinstance(module, nn.Conv2d):
            return f"{self.name} factorizes convolution kernels; use svd for Linear layers and albert for Embedding"
        return None

    def single_ranks(self, dims: Dims, rank: int) -> Ranks:
        out, inp, _, _ = dims
        return Ranks(min(rank, out), min(rank, inp))

    def factored_params(self, dims: Dims, ranks: Ranks) -> int:
        out, inp, kh, kw = dims
        return inp * ranks.inp + ranks.inp * ranks.out * kh * kw + ranks.out * out

    def ranks_for_fraction(self, module: nn.Module, fraction: float, bias: int = 0) -> Ranks:
        weight = module.weight
        return tucker_ranks_for_fraction(layer_dims(module), fraction, unfolding_singular_values(weight, 0),
                                         unfolding_singular_values(weight, 1), bias)

    def ranks_from_modes(self, dims, rank_of) -> Ranks:
        return Ranks(rank_of(0), rank_of(1))

    def flops_ratio(self, dims: Dims, ranks: Ranks, stride: tuple[int, int] = (1, 1)) -> float:
        """Exact for the core and last factor; the first runs at the input resolution, taken as
        the output's times the stride (padding ignored)."""
        out, inp, kh, kw = dims
        sh, sw = stride
        return (inp * ranks.inp * sh * sw + ranks.inp * ranks.out * kh * kw + ranks.out * out) / (out * inp * kh * kw)

    def factor_shapes(self, dims: Dims, ranks: Ranks, bias: int) -> tuple[tuple[int, int, int], ...]:
        out, inp, kh, kw = dims
        return (ranks.inp, inp, 0), (ranks.out, ranks.inp * kh * kw, 0), (out, ranks.out, bias)

    def factorize(self, module: nn.Module, ranks: Ranks, solver: str) -> nn.Module:
        return TuckerConv2d.from_conv(module, ranks.out, ranks.inp, solver)

    def dense_weight(self, layer: nn.Module) -> torch.Tensor:
        return torch.einsum("oa,abhw,bi->oihw", layer.last.weight.flatten(1), layer.core.weight,
                            layer.first.weight.flatten(1))

    def rank_text(self, ranks: Ranks) -> str:
        return f"ranks {ranks.out}x{ranks.inp}"


def tucker_ranks_for_fraction(dims: Dims, fraction: float, s_out: np.ndarray, s_in: np.ndarray,
                              bias: int = 0) -> Ranks:
    """Per-mode Tucker-2 ranks within a parameter budget, grown greedily by energy per parameter.

    The HOSVD error is bounded by the energy discarded over both modes, so spending the budget
    where a rank buys the most energy minimises that bound. Stops when neither mode can grow.
    """
    out, inp, kh, kw = dims
    params = Tucker().factored_params
    budget = fraction * (out * inp * kh * kw + bias) - bias
    e_out, e_in = energy_shares(s_out, out), energy_shares(s_in, inp)
    ranks = Ranks(1, 1)
    while True:
        options = []
        for grown, gain in ((Ranks(ranks.out + 1, ranks.inp), e_out[ranks.out] if ranks.out < out else None),
                            (Ranks(ranks.out, ranks.inp + 1), e_in[ranks.inp] if ranks.inp < inp else None)):
            cost = params(dims, grown)
            if gain is not None and cost <= budget:
                options.append((gain / (cost - params(dims, ranks)), grown))
        if not options:
            return ranks
        ranks = max(options, key=lambda option: option[0])[1]
