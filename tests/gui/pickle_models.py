"""An importable module class, so a pickled instance can be unpickled in the tests."""

from __future__ import annotations

import torch
from torch import nn


class PickledNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 5)
        self.fc2 = nn.Linear(5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))
