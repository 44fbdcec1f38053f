"""CP (CANDECOMP/PARAFAC) for Conv2d: pointwise in → R, depthwise kx1 and 1xk, pointwise R → out."""

from __future__ import annotations

import torch
from torch import nn

from studio.core.techniques.lowrank_layers import CPConv2d
from studio.core.techniques.lowrank_math import Ranks
from studio.core.techniques.lowrank_methods import (Dims, LowRankMethod, linear_budget_rank, register_method,
                                                    zero_padding_problem)


@register_method("cp")
class CP(LowRankMethod):
    priority = 2
    layer_classes = (CPConv2d,)

    def problem(self, module: nn.Module) -> str | None:
        if not isinstance(module, nn.Conv2d):
            return f"{self.name} factorizes convolution kernels; use svd for Linear layers and albert for Embedding"
        if isinstance(module.padding, str):
            return f"cp needs numeric padding and this conv has padding={module.padding!r}; use tucker"
        return zero_padding_problem(module, self.name)

    @staticmethod
    def _per_rank(dims: Dims) -> int:
        out, inp, kh, kw = dims
        return inp + kh + kw + out  # pointwise, kh x 1, 1 x kw, pointwise

    def factored_params(self, dims: Dims, ranks: Ranks) -> int:
        return ranks.out * self._per_rank(dims)

    def break_even_rank(self, dims: Dims) -> int:
        out, inp, kh, kw = dims
        return (out * inp * kh * kw - 1) // self._per_rank(dims)  # r * per_rank < dense

    def rank_for_fraction(self, dims: Dims, fraction: float, bias: int = 0) -> int:
        return linear_budget_rank(dims, self._per_rank(dims), fraction, bias)

    def ranks_from_modes(self, dims, rank_of) -> Ranks:
        """The larger of the two channel modes: a CP of rank R has unfoldings of rank ≤ R, so
        this is a lower bound, not a guarantee."""
        rank = max(rank_of(0), rank_of(1))
        return Ranks(rank, rank)

    def flops_ratio(self, dims: Dims, ranks: Ranks, stride: tuple[int, int] = (1, 1)) -> float:
        out, inp, kh, kw = dims
        sh, sw = stride
        r = ranks.out
        return (inp * r * sh * sw + r * kh * sw + r * kw + r * out) / (out * inp * kh * kw)

    def factor_shapes(self, dims: Dims, ranks: Ranks, bias: int) -> tuple[tuple[int, int, int], ...]:
        out, inp, kh, kw = dims
        r = ranks.out  # pointwise, depthwise kh x 1 and 1 x kw (one input each), pointwise
        return (r, inp, 0), (r, kh, 0), (r, kw, 0), (out, r, bias)

    def factorize(self, module: nn.Module, ranks: Ranks, solver: str) -> nn.Module:
        """CPConv2d filled by the einsum ALS of `cp_decompose`, 10-30x faster than tensorly's
        generic `parafac` (which `CPConv2d.from_conv` uses) on 3x3 kernels of a few hundred channels."""
        rank = ranks.out
        f_out, f_in, f_h, f_w = cp_decompose(module.weight, rank)
        layer = CPConv2d(module, rank)
        with torch.no_grad():
            layer.first.weight.copy_(f_in.T.reshape(rank, -1, 1, 1))
            layer.vertical.weight.copy_(f_h.T.reshape(rank, 1, -1, 1))
            layer.horizontal.weight.copy_(f_w.T.reshape(rank, 1, 1, -1))
            layer.last.weight.copy_(f_out.reshape(-1, rank, 1, 1))
            if module.bias is not None:
                layer.last.bias.copy_(module.bias)
        return layer

    def dense_weight(self, layer: nn.Module) -> torch.Tensor:
        return torch.einsum("or,ri,rh,rw->oihw", layer.last.weight.flatten(1), layer.first.weight.flatten(1),
                            layer.vertical.weight.flatten(1), layer.horizontal.weight.flatten(1))


def cp_decompose(weight: torch.Tensor, rank: int, n_iter_max: int = 100, tol: float = 1e-7,
                 seed: int = 0) -> list[torch.Tensor]:
    """CP of a 4-way conv kernel by alternating least squares, initialised from the unfoldings'
    singular vectors as tensorly's `parafac(init="svd")` does.

    Written with einsum for the (out, in, kh, kw) case: the products with the small kernel
    modes stay small, so a 256x256x3x3 kernel takes about a second where tensorly's generic
    Khatri-Rao path takes tens. Returns the four factors (out x R, in x R, kh x R, kw x R) in
    float64, the weights spread so matching columns have equal norms. CP has no closed form:
    even a generous rank is approximate.
    """
    tensor = weight.detach().double().cpu()
    generator = torch.Generator().manual_seed(seed)
    factors = []
    for mode, size in enumerate(tensor.shape):
        unfolded = tensor.movedim(mode, 0).reshape(size, -1)
        u = torch.linalg.svd(unfolded, full_matrices=False)[0][:, :rank]
        if u.shape[1] < rank:  # more components than the mode has: fill with random columns
            extra = torch.randn(size, rank - u.shape[1], generator=generator, dtype=u.dtype)
            u = torch.cat([u, extra], 1)
        factors.append(u)
    specs = ("oihw,ir,hr,wr->or", "oihw,or,hr,wr->ir", "oihw,or,ir,wr->hr", "oihw,or,ir,hr->wr")
    norm2 = float(tensor.pow(2).sum())
    previous = float("inf")
    eye = torch.eye(rank, dtype=tensor.dtype)
    for _ in range(n_iter_max):
        for mode in range(4):
            others = [f for m, f in enumerate(factors) if m != mode]
            gram = others[0].T @ others[0] * (others[1].T @ others[1]) * (others[2].T @ others[2])
            mttkrp = torch.einsum(specs[mode], tensor, *others)
            ridge = 1e-12 * float(gram.diagonal().mean()) * eye  # keeps rank-deficient Grams solvable
            factors[mode] = torch.linalg.solve(gram + ridge, mttkrp.T).T
        full_gram = torch.ones(rank, rank, dtype=tensor.dtype)
        for factor in factors:
            full_gram = full_gram * (factor.T @ factor)
        inner = float((mttkrp * factors[3]).sum())
        error = max(norm2 - 2 * inner + float(full_gram.sum()), 0.0) ** 0.5 / max(norm2 ** 0.5, 1e-30)
        if abs(previous - error) < tol:
            break
        previous = error
    norms = torch.stack([f.norm(dim=0) for f in factors]).clamp_min(1e-30)
    balanced = norms.prod(0) ** 0.25  # equal column norms across factors: safe to cast to half precision
    return [f / n * balanced for f, n in zip(factors, norms)]
