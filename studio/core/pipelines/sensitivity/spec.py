"""What a sweep measures and what a fitted plan must meet (plain data, no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from studio.core.plan import CompressionPlan

@dataclass(frozen=True)
class SweepSpec:
    techniques: tuple[str, ...] = ()  # empty: every registered technique that has sweep settings
    layers: str | None = None  # glob / re: pattern like recipe rules; None = every compressible layer
    settings: dict[str, tuple[str, ...]] | None = None  # per technique, labels or values; None = defaults
    samples: int = 200
    workers: int = 0  # 0 = in-process; N = local processes
    ray: str | None = None  # "local" or an address
    inverse: bool = True  # also measure "all int8 but this layer" when quantize is swept
    fast: bool = True  # cache layer inputs and recompute only downstream where possible


@dataclass(frozen=True)
class Target:
    kind: str  # "size" (bytes) | "params" (fraction kept) | "flops" (fraction kept) | "max_drop"
    value: float


@dataclass(frozen=True)
class FittedPlan:
    plan: CompressionPlan
    predicted_drop: float
    predicted_params: int
    predicted_bytes: int
    predicted_flops: int
    choices: tuple[tuple[str, str], ...]  # (layer, setting label)
    solver: str  # e.g. "greedy slope" or "exact DP"
    met: bool  # whether the target is met by the prediction
