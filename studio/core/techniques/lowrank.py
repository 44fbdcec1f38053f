"""Rank reduction: truncated SVD for Linear and 1x1 Conv2d, Tucker-2 and CP for Conv2d
(tensorly). Ranks come from the config (absolute, fraction of parameters, or energy) or
are suggested automatically by energy or VBMF; a layer whose factorization would not save
parameters is left dense with a warning."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch import nn

from studio.core.techniques.base import (ApplyContext, Estimate, LayerChange, Technique, TechniqueConfig,
                                         register, replace_submodule_)
from studio.core.techniques.lowrank_layers import CPConv2d, LowRankConv1x1, LowRankLinear, TuckerConv2d

METHODS = ("svd", "tucker", "cp")
SOLVERS = ("auto", "exact", "randomized")
DEFAULT_ENERGY = 0.9


@dataclass(frozen=True)
class LowRankConfig(TechniqueConfig):
    """One of `rank`, `rank_fraction` (share of the layer's parameters to keep) or `energy`
    (share of squared singular values to keep); none of them means energy 0.9."""

    method: str = "svd"
    rank: int | None = None
    rank_fraction: float | None = None
    energy: float | None = None
    solver: str = "auto"

    def problems(self) -> list[str]:
        out = []
        if self.method not in METHODS:
            out.append(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        given = [k for k in ("rank", "rank_fraction", "energy") if getattr(self, k) is not None]
        if len(given) > 1:
            out.append(f"give one of rank, rank_fraction or energy, not {' and '.join(given)}")
        if self.rank is not None and (isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1):
            out.append(f"rank {self.rank!r} must be a positive integer")
        if self.rank_fraction is not None and not (isinstance(self.rank_fraction, (int, float)) and 0 < self.rank_fraction < 1):
            out.append(f"rank_fraction {self.rank_fraction!r} must be a fraction strictly between 0 and 1")
        if self.energy is not None and not (isinstance(self.energy, (int, float)) and 0 < self.energy <= 1):
            out.append(f"energy {self.energy!r} must be within (0, 1]")
        if self.solver not in SOLVERS:
            out.append(f"solver {self.solver!r} is not one of {', '.join(SOLVERS)}")
        return out

    def summary(self) -> str:
        if self.rank is not None:
            return f"{self.method} r={self.rank}"
        if self.rank_fraction is not None:
            return f"{self.method} {self.rank_fraction:.0%} params"
        return f"{self.method} energy {self.energy or DEFAULT_ENERGY:g}"


# --- rank arithmetic ----------------------------------------------------------------------

def _dims(module: nn.Module) -> tuple[int, int, int, int]:
    """(out, in, kh, kw); a Linear is a 1x1 kernel."""
    if isinstance(module, nn.Linear):
        return module.out_features, module.in_features, 1, 1
    return module.out_channels, module.in_channels, *module.kernel_size


def weight_params(module: nn.Module, method: str, ranks: tuple[int, int]) -> int:
    """Weight parameters of the factorized layer (bias unchanged)."""
    out, inp, kh, kw = _dims(module)
    r_out, r_in = ranks
    if method == "svd":
        return r_out * (out + inp * kh * kw)
    if method == "tucker":
        return inp * r_in + r_in * r_out * kh * kw + r_out * out
    return r_out * (inp + kh + kw + out)  # cp


def break_even_rank(module: nn.Module, method: str) -> int:
    """The largest single rank whose factorization still has fewer weights than the layer."""
    dense = module.weight.numel()
    out, inp, _, _ = _dims(module)
    best, low, high = 0, 1, max(out, inp) * (16 if method == "cp" else 1)
    while low <= high:
        mid = (low + high) // 2
        if weight_params(module, method, _single(module, method, mid)) < dense:
            best, low = mid, mid + 1
        else:
            high = mid - 1
    return best


def _single(module: nn.Module, method: str, rank: int) -> tuple[int, int]:
    out, inp, _, _ = _dims(module)
    if method == "tucker":
        return min(rank, out), min(rank, inp)
    if method == "svd":
        return min(rank, out, inp), 0
    return rank, 0


def rank_for_energy(singular_values: np.ndarray, energy: float) -> int:
    power = np.cumsum(np.asarray(singular_values, dtype=np.float64) ** 2)
    return int(np.searchsorted(power / power[-1], energy - 1e-12) + 1)


def _unfold_singular_values(module: nn.Module, mode: int) -> np.ndarray:
    weight = module.weight.detach().float()
    matrix = weight.flatten(1) if mode == 0 else weight.transpose(0, 1).flatten(1)
    return torch.linalg.svdvals(matrix).double().numpy()


def evbmf_rank(singular_values: np.ndarray, rows: int, cols: int, total_energy: float | None = None) -> int:
    """Empirical VBMF (Nakajima et al., 2013): the rank at which singular values stand above
    the estimated noise level, with the noise variance fitted by the analytic solution."""
    from scipy.optimize import minimize_scalar

    s = np.asarray(singular_values, dtype=np.float64)
    L, M = min(rows, cols), max(rows, cols)
    H = len(s)
    alpha = L / M
    tau_bar = 2.5129 * np.sqrt(alpha)
    x_bar = (1 + tau_bar) * (1 + alpha / tau_bar)
    residual = max(0.0, (total_energy if total_energy is not None else float(np.sum(s ** 2))) - float(np.sum(s ** 2)))
    eh_ub = int(min(np.ceil(L / (1 + alpha)) - 1, H)) - 1
    upper = (np.sum(s ** 2) + residual) / (L * M)
    tail = s[eh_ub + 1:] if eh_ub + 1 < H else s[-1:]
    lower = max(tail[0] ** 2 / (M * x_bar), np.mean(tail ** 2) / M)

    def objective(sigma2: float) -> float:
        x = s ** 2 / (M * sigma2)
        z1, z2 = x[x > x_bar], x[x <= x_bar]
        tau = 0.5 * (z1 - (1 + alpha) + np.sqrt((z1 - (1 + alpha)) ** 2 - 4 * alpha))
        return float(np.sum(z2 - np.log(z2)) + np.sum(z1 - tau) + np.sum(np.log((tau + 1) / z1))
                     + alpha * np.sum(np.log(tau / alpha + 1)) + residual / (M * sigma2) + (L - H) * np.log(sigma2))

    sigma2 = minimize_scalar(objective, bounds=(lower, max(upper, lower * (1 + 1e-9))), method="bounded").x
    threshold = np.sqrt(M * sigma2 * (1 + tau_bar) * (1 + alpha / tau_bar))
    return max(1, int(np.sum(s > threshold)))


def suggest_rank(module: nn.Module, method: str = "svd", by: str = "energy", energy: float = DEFAULT_ENERGY) -> int:
    """Automatic rank for a layer: by singular-value energy, or by VBMF's noise estimate."""
    s = _unfold_singular_values(module, 0)
    rows, cols = module.weight.shape[0], module.weight[0].numel()
    if by == "vbmf":
        return evbmf_rank(s, rows, cols, float(module.weight.detach().double().pow(2).sum()))
    return rank_for_energy(s, energy)


def choose_ranks(module: nn.Module, config: LowRankConfig) -> tuple[int, int]:
    """(r_out, r_in) for Tucker; (r, 0) for SVD and CP."""
    method = config.method
    if config.rank is not None:
        return _single(module, method, config.rank)
    if config.rank_fraction is not None:
        budget = config.rank_fraction * module.weight.numel()
        rank = 1
        while weight_params(module, method, _single(module, method, rank + 1)) <= budget and rank < 100_000:
            rank += 1
        return _single(module, method, rank)
    energy = config.energy or DEFAULT_ENERGY
    r_out = rank_for_energy(_unfold_singular_values(module, 0), energy)
    if method == "tucker":
        return min(r_out, module.weight.shape[0]), rank_for_energy(_unfold_singular_values(module, 1), energy)
    return _single(module, method, r_out)


# --- the technique ------------------------------------------------------------------------

def _saves(module: nn.Module, config: LowRankConfig, ranks: tuple[int, int]) -> bool:
    return weight_params(module, config.method, ranks) < module.weight.numel()


@register
class LowRank(Technique):
    name = "lowrank"
    config_type = LowRankConfig
    order = 0
    label = "Low-rank…"
    supported_types = "Linear, Conv2d (groups=1)"

    def supports(self, module: nn.Module) -> bool:
        return type(module) is nn.Linear or (type(module) is nn.Conv2d and module.groups == 1)

    def check(self, name: str, module: nn.Module, config: LowRankConfig) -> list[str]:
        out, inp, kh, kw = _dims(module)
        kind = f"{out}x{inp}" + (f" {kh}x{kw} Conv2d" if isinstance(module, nn.Conv2d) else " Linear")
        if config.method == "svd" and isinstance(module, nn.Conv2d) and (kh, kw) != (1, 1):
            return [f"svd applies to Linear and 1x1 Conv2d; use tucker or cp for this {kh}x{kw} kernel"]
        if config.method in ("tucker", "cp") and isinstance(module, nn.Linear):
            return [f"{config.method} factorizes convolution kernels; use svd for Linear layers"]
        if config.rank is not None and config.method in METHODS:
            limit = break_even_rank(module, config.method)
            if config.rank > limit:
                return [f"rank {config.rank} saves no parameters for this {kind} (the largest useful rank is {limit})"]
        return []

    def project(self, module: nn.Module, config: LowRankConfig, estimate: Estimate) -> Estimate:
        ranks = choose_ranks(module, config)
        if not _saves(module, config, ranks):
            return estimate
        dense = module.weight.numel()
        after = weight_params(module, config.method, ranks)
        removed = dense - after
        ratio = after / dense  # FLOPs scale with the weights for Linear/SVD; an approximation for conv factors
        return Estimate(estimate.params - removed, estimate.bytes - removed * module.weight.element_size(),
                        int(estimate.flops * ratio), estimate.nonzero - removed)

    def apply_(self, model: nn.Module, targets: dict[str, LowRankConfig],
               context: ApplyContext) -> Iterator[LayerChange]:
        for name, config in targets.items():
            context.check_cancel()
            module = model.get_submodule(name)
            before = sum(p.numel() for p in module.parameters())
            ranks = choose_ranks(module, config)
            label = f"rank {ranks[0]}" + (f"x{ranks[1]}" if config.method == "tucker" else "")
            if not _saves(module, config, ranks):
                message = f"{name}: {config.method} {label} would not save parameters; left dense"
                context.warnings.append(message)
                yield LayerChange(name, self.name, message.split(": ", 1)[1], before, before, skipped=True)
                continue
            with torch.no_grad():
                if config.method == "svd" and isinstance(module, nn.Linear):
                    new = LowRankLinear.from_linear(module, ranks[0], config.solver)
                elif config.method == "svd":
                    new = LowRankConv1x1.from_conv(module, ranks[0], config.solver)
                elif config.method == "tucker":
                    new = TuckerConv2d.from_conv(module, *ranks)
                else:
                    new = CPConv2d.from_conv(module, ranks[0])
            replace_submodule_(model, name, new)
            after = sum(p.numel() for p in new.parameters())
            yield LayerChange(name, self.name, f"{config.method} {label}", before, after)
