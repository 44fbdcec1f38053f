"""ALBERT's factorized embedding parameterization (Lan et al. 2020) for Embedding tables: the
V x d table becomes a V x r table and an r → d projection, r(V + d) parameters instead of V·d.
The factors are the table's truncated SVD (its best rank-r approximation), U√S as the small
table and √S Vᵀ as the projection, so the model moves least before fine-tuning. `svd` on an
Embedding means this method (the low-rank technique maps it)."""

from __future__ import annotations

import torch
from torch import nn

from studio.core.techniques.forward_probe import hooked_forward
from studio.core.techniques.lowrank_layers import _svd
from studio.core.techniques.lowrank_math import Ranks
from studio.core.techniques.lowrank_methods import Dims, LowRankMethod, linear_budget_rank, register_method


class FactorizedEmbedding(nn.Module):
    """`second(first(ids))`: a rank-r lookup, then a bias-free r → d Linear; both are standard
    layers, so pruning and quantization (int8 tables included) treat them like any other."""

    def __init__(self, num_embeddings: int, embedding_dim: int, rank: int, padding_idx: int | None = None) -> None:
        super().__init__()
        self.first = nn.Embedding(num_embeddings, rank, padding_idx)
        self.second = nn.Linear(rank, embedding_dim, bias=False)
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx

    @classmethod
    def from_embedding(cls, table: nn.Embedding, rank: int, solver: str = "auto") -> FactorizedEmbedding:
        layer = cls(table.num_embeddings, table.embedding_dim, rank, table.padding_idx)
        u, s, vh = _svd(table.weight, rank, solver)
        root = s.sqrt()
        with torch.no_grad():
            layer.first.weight.copy_((u * root).to(table.weight.dtype))
            layer.second.weight.copy_((root[:, None] * vh).T.to(table.weight.dtype))
        return layer.to(table.weight.device)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(ids))


@register_method("albert")
class Albert(LowRankMethod):
    priority = 3
    layer_classes = (FactorizedEmbedding,)

    def problem(self, module: nn.Module) -> str | None:
        if not isinstance(module, nn.Embedding):
            return "albert factorizes Embedding tables; use svd for Linear and tucker or cp for convolutions"
        if module.max_norm is not None:
            return "this Embedding renormalizes its rows (max_norm), which a factorized table cannot; " \
                   "exclude it (lowrank: null)"
        if type(module).forward is not nn.Embedding.forward:
            return (f"{type(module).__name__} has its own forward (e.g. a scale after the lookup) that a factorized "
                    "table would drop; exclude it (lowrank: null)")
        return None

    def max_rank(self, dims: Dims) -> int:
        rows, width, _, _ = dims
        return min(rows, width)

    def single_ranks(self, dims: Dims, rank: int) -> Ranks:
        rank = min(rank, self.max_rank(dims))
        return Ranks(rank, rank)

    def factored_params(self, dims: Dims, ranks: Ranks) -> int:
        rows, width, _, _ = dims
        return ranks.out * (rows + width)  # (V x r) table + (d x r) projection

    def break_even_rank(self, dims: Dims) -> int:
        rows, width, _, _ = dims
        return min((rows * width - 1) // (rows + width), self.max_rank(dims))

    def rank_for_fraction(self, dims: Dims, fraction: float, bias: int = 0) -> int:
        rows, width, _, _ = dims
        return max(1, min(linear_budget_rank(dims, rows + width, fraction, bias), self.max_rank(dims)))

    def ranks_from_modes(self, dims, rank_of) -> Ranks:
        return self.single_ranks(dims, rank_of(0))  # the table itself is the rows unfolding

    def flops_ratio(self, dims: Dims, ranks: Ranks, stride: tuple[int, int] = (1, 1)) -> float:
        # A lookup has no multiply-adds, so nothing scales; the projection's r·d per token is new
        # work a ratio cannot express: the low-rank technique adds it (projection_flops).
        return 1.0

    def factor_shapes(self, dims: Dims, ranks: Ranks, bias: int) -> tuple[tuple[int, int, int], ...]:
        rows, width, _, _ = dims
        return (rows, ranks.out, 0), (width, ranks.out, 0)  # per-row table, per-output projection

    def factorize(self, module: nn.Module, ranks: Ranks, solver: str) -> nn.Module:
        return FactorizedEmbedding.from_embedding(module, ranks.out, solver)

    def dense_weight(self, layer: nn.Module) -> torch.Tensor:
        return layer.first.weight @ layer.second.weight.T


def projection_flops(model: nn.Module, example_inputs: tuple[tuple, dict], ranks: dict[str, int]) -> dict[str, int]:
    """{table: FLOPs of its r → d projection on the example inputs}, 2·r·d per looked-up id (as
    PyTorch's FLOP counter counts a Linear): new work the table's own estimate (a lookup, none)
    cannot scale to. The ids are counted in one no-grad forward pass in eval mode (restored after)."""
    ids: dict[str, int] = {}
    handles = []
    for name in ranks:
        module = model.get_submodule(name)
        if not isinstance(module, nn.Embedding):
            continue

        def hook(_module, args, name=name):
            ids[name] = ids.get(name, 0) + int(args[0].numel())
        handles.append(module.register_forward_pre_hook(hook))
    if not hooked_forward(model, example_inputs, handles):
        ids.clear()  # the projection stays without this term rather than failing
    return {name: 2 * count * ranks[name] * model.get_submodule(name).embedding_dim for name, count in ids.items()}
