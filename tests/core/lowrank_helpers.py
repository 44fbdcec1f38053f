"""Helpers shared by the low-rank tests."""

from __future__ import annotations

import torch
from torch import nn

from studio.core.base.cancel import CancelToken
from studio.core.techniques.base import ApplyContext
from studio.core.techniques.lowrank import LowRank

LOWRANK = LowRank()


def params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def seeded(module: nn.Module, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    for p in module.parameters():
        nn.init.normal_(p, std=0.1)
    return module


def apply(model: nn.Module, targets: dict, cancel: CancelToken | None = None) -> tuple[list, ApplyContext]:
    context = ApplyContext(example_inputs=((), {}), cancel=cancel)
    return list(LOWRANK.apply_(model, targets, context)), context


def noisy_low_rank(rows: int, cols: int, rank: int, noise: float, scale: float = 1.0) -> nn.Linear:
    generator = torch.Generator().manual_seed(3)
    linear = nn.Linear(cols, rows)
    u, v = torch.randn(rows, rank, generator=generator), torch.randn(rank, cols, generator=generator)
    linear.weight.data = scale * (u @ v + noise * torch.randn(rows, cols, generator=generator))
    return linear
