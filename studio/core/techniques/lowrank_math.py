"""Rank arithmetic shared by every low-rank method: layer dims, rank choice by energy or VBMF,
and cached singular values of weight unfoldings. The per-method formulas (parameters, FLOPs,
break-even ranks) live with each method in `lowrank_methods`.

A layer may be given as a module (anything with `.weight`) or as its weight shape: (out, in)
for Linear, (out, in, kh, kw) for Conv2d.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import torch


class Ranks(NamedTuple):
    """Ranks of a factorization: Tucker-2 has one per channel mode; SVD and CP use `out == inp`."""

    out: int
    inp: int


def layer_dims(layer: Any) -> tuple[int, int, int, int]:
    """(out, in, kh, kw) of a module or weight shape; a Linear is a 1x1 kernel."""
    shape = tuple(layer.weight.shape) if hasattr(layer, "weight") else tuple(layer)
    out, inp, *kernel = shape
    kh, kw = (kernel + [1, 1])[:2] if len(kernel) < 2 else kernel[:2]
    return int(out), int(inp), int(kh), int(kw)


def energy_shares(singular_values: np.ndarray, size: int) -> np.ndarray:
    power = np.asarray(singular_values, dtype=np.float64) ** 2
    power = np.pad(power, (0, max(0, size - len(power))))
    total = power.sum()
    return power / total if total > 0 else np.full(len(power), 1.0 / max(1, len(power)))


def rank_for_energy(singular_values: np.ndarray, energy: float) -> int:
    """Smallest rank whose singular values hold at least `energy` of the sum of squares."""
    power = np.cumsum(np.asarray(singular_values, dtype=np.float64) ** 2)
    if len(power) == 0 or power[-1] <= 0:
        return 1
    return int(min(len(power), np.searchsorted(power / power[-1], energy - 1e-12) + 1))


def kept_energy(singular_values: np.ndarray, rank: int) -> float:
    """Share of the squared singular values a rank keeps."""
    power = np.asarray(singular_values, dtype=np.float64) ** 2
    return float(power[:rank].sum() / power.sum()) if power.sum() > 0 else 1.0


def evbmf_rank(singular_values: np.ndarray, rows: int, cols: int, total_energy: float | None = None) -> int:
    """Rank from the analytic Empirical VBMF solution (Nakajima et al., JMLR 2013), as MUSCO uses.

    The noise variance σ² minimises the EVB free energy, known in closed form given σ²; the
    components kept are those above the EVB threshold √(Mσ²(1+τ̄)(1+α/τ̄)). Singular values are
    normalised first and σ² is searched on a log grid then refined, because the free energy is
    not convex and weight matrices have σ² far below the absolute tolerances of 1-D solvers.
    `total_energy` (sum of squares of the whole matrix) accounts for singular values not given.
    """
    from scipy.optimize import minimize_scalar

    s = np.sort(np.asarray(singular_values, dtype=np.float64))[::-1]
    L, M = min(rows, cols), max(rows, cols)
    s = s[:L]
    H = len(s)
    if H == 0 or s[0] <= 0:
        return 1
    alpha = L / M
    tau_bar = 2.5129 * math.sqrt(alpha)
    x_bar = (1 + tau_bar) * (1 + alpha / tau_bar)
    power = s ** 2
    residual = max(0.0, total_energy - power.sum()) if total_energy is not None and H < L else 0.0
    scale = (power.sum() + residual) / (L * M)  # the upper bound of σ², mapped to 1
    power, residual = power / scale, residual / scale
    first_noise = min(int(min(math.ceil(L / (1 + alpha)) - 1, H)), H - 1)
    lower = max(power[first_noise] / (M * x_bar), power[first_noise:].mean() / M, 1e-12)
    upper = max(1.0, lower * (1 + 1e-9))

    def free_energy(log_sigma2: float) -> float:
        sigma2 = math.exp(log_sigma2)
        x = power / (M * sigma2)
        big, small = x[x > x_bar], x[x <= x_bar]
        tau = 0.5 * (big - (1 + alpha) + np.sqrt(np.maximum((big - (1 + alpha)) ** 2 - 4 * alpha, 0.0)))
        return float(np.sum(small - np.log(small)) + np.sum(big - tau) + np.sum(np.log((tau + 1) / big))
                     + alpha * np.sum(np.log(tau / alpha + 1)) + residual / (M * sigma2) + (L - H) * log_sigma2)

    grid = np.linspace(math.log(lower), math.log(upper), 161)
    values = [free_energy(t) for t in grid]
    best = int(np.argmin(values))
    bounds = (grid[max(0, best - 1)], grid[min(len(grid) - 1, best + 1)])
    if bounds[1] > bounds[0]:
        refined = minimize_scalar(free_energy, bounds=bounds, method="bounded", options={"xatol": 1e-10})
        log_sigma2 = refined.x if refined.fun <= values[best] else grid[best]
    else:
        log_sigma2 = grid[best]
    threshold = M * math.exp(log_sigma2) * x_bar  # compared with the squared, normalised values
    return max(1, int(np.sum(power > threshold)))


# --- singular values of weight unfoldings, cached for the live what-if projection -------

_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 512


def unfolding_singular_values(weight: torch.Tensor, mode: int = 0) -> np.ndarray:
    """Singular values of the mode-`mode` unfolding (0: out x rest, 1: in x rest), descending.

    Cached by tensor identity, version counter, storage and a sample checksum, so editing a
    plan does not repeat the SVDs while an in-place change to the weights does.
    """
    import torch

    flat = weight.detach().reshape(-1)
    step = max(1, flat.numel() // 64)
    key = (id(weight), weight._version, weight.data_ptr(), tuple(weight.shape), mode,
           float(flat[::step].double().sum()))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    matrix = weight.detach().float().cpu()
    if matrix.dim() == 1:
        matrix = matrix[:, None]
    matrix = matrix.flatten(1) if mode == 0 else matrix.transpose(0, 1).flatten(1)
    values = torch.linalg.svdvals(matrix).double().numpy()
    with _CACHE_LOCK:
        _CACHE[key] = values
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return values
