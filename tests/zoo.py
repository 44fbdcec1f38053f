"""Small real architectures the tests inspect, load and pickle (importable, so pickles resolve)."""

from __future__ import annotations

import torch
from torch import nn


class TinyMobileNet(nn.Module):
    """BatchNorm, depthwise-separable convs with stride, a residual add, global pooling."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.dw = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU6())
        self.pw = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.pw(self.dw(x))
        return self.head(x.mean((2, 3)))


class TiedLM(nn.Module):
    """Output projection tied to the input embedding, as in most language models."""

    def __init__(self, vocab: int = 50, dim: int = 16) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.body = nn.Sequential(nn.Linear(dim, dim), nn.GELU())
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.embed.weight

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.body(self.embed(ids)))


class ReusedBlock(nn.Module):
    """The same Linear module registered under two names and called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.first = nn.Linear(6, 6)
        self.second = self.first
        self.out = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.second(torch.relu(self.first(x))))


class Wide(nn.Module):
    """More than 10k modules, for scale tests."""

    def __init__(self, blocks: int = 2600) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Identity()) for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


def tiny_bert_config(**overrides):
    from transformers import BertConfig

    values = dict(vocab_size=120, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=64, max_position_embeddings=64)
    values.update(overrides)
    return BertConfig(**values)


def unique_params(module: nn.Module) -> int:
    """Independent count: parameters() already yields each tensor once."""
    return sum(p.numel() for p in module.parameters())


def unique_state_bytes(module: nn.Module) -> int:
    seen: dict[int, torch.Tensor] = {}
    for tensor in module.state_dict(keep_vars=True).values():
        seen.setdefault(id(tensor), tensor)
    return sum(t.numel() * t.element_size() for t in seen.values())
