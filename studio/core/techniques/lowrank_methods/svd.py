"""Truncated SVD: W (out x in·kh·kw) ≈ (U √S)(√S Vᵀ), for Linear and 1x1 Conv2d layers."""

from __future__ import annotations

import torch
from torch import nn

from studio.core.techniques.lowrank_layers import LowRankConv1x1, LowRankLinear
from studio.core.techniques.lowrank_math import Ranks
from studio.core.techniques.lowrank_methods import (Dims, LowRankMethod, linear_budget_rank, register_method,
                                                    zero_padding_problem)


@register_method("svd")
class SVD(LowRankMethod):
    priority = 0
    layer_classes = (LowRankLinear, LowRankConv1x1)

    def problem(self, module: nn.Module) -> str | None:
        if isinstance(module, nn.Embedding):
            return "svd factorizes Linear and 1x1 Conv2d; Embedding tables use albert (svd on a table means albert)"
        if not isinstance(module, nn.Conv2d):
            return None
        kh, kw = module.kernel_size
        if (kh, kw) != (1, 1):
            return f"svd applies to Linear and 1x1 Conv2d; use tucker or cp for {kh}x{kw} kernels"
        return zero_padding_problem(module, self.name)

    def max_rank(self, dims: Dims) -> int:
        out, inp, kh, kw = dims
        return min(out, inp * kh * kw)

    def single_ranks(self, dims: Dims, rank: int) -> Ranks:
        rank = min(rank, self.max_rank(dims))
        return Ranks(rank, rank)

    def factored_params(self, dims: Dims, ranks: Ranks) -> int:
        out, inp, kh, kw = dims
        return ranks.out * (out + inp * kh * kw)  # (out x r)(r x in·kh·kw)

    def break_even_rank(self, dims: Dims) -> int:
        out, inp, kh, kw = dims
        limit = (out * inp * kh * kw - 1) // (out + inp * kh * kw)  # r * per_rank < dense
        return min(limit, self.max_rank(dims))

    def rank_for_fraction(self, dims: Dims, fraction: float, bias: int = 0) -> int:
        out, inp, kh, kw = dims
        rank = linear_budget_rank(dims, out + inp * kh * kw, fraction, bias)
        return max(1, min(rank, self.max_rank(dims)))

    def ranks_from_modes(self, dims, rank_of) -> Ranks:
        return self.single_ranks(dims, rank_of(0))  # the output unfolding is the matrix itself

    def flops_ratio(self, dims: Dims, ranks: Ranks, stride: tuple[int, int] = (1, 1)) -> float:
        out, inp, kh, kw = dims  # the stride sits on the first 1x1 conv: both factors at output resolution
        return self.factored_params(dims, ranks) / (out * inp * kh * kw)

    def factor_shapes(self, dims: Dims, ranks: Ranks, bias: int) -> tuple[tuple[int, int, int], ...]:
        out, inp, kh, kw = dims
        return (ranks.out, inp * kh * kw, 0), (out, ranks.out, bias)

    def factorize(self, module: nn.Module, ranks: Ranks, solver: str) -> nn.Module:
        if isinstance(module, nn.Linear):
            return LowRankLinear.from_linear(module, ranks.out, solver)
        return LowRankConv1x1.from_conv(module, ranks.out, solver)

    def dense_weight(self, layer: nn.Module) -> torch.Tensor:
        if isinstance(layer, LowRankLinear):
            return layer.second.weight @ layer.first.weight
        return (layer.second.weight.flatten(1) @ layer.first.weight.flatten(1))[:, :, None, None]
