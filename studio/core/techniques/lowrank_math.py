"""Rank arithmetic for rank reduction: parameter formulas of the factorized forms, break-even
ranks, rank choice by parameter fraction, energy or VBMF, and cached singular values.

Pure functions over weight shapes and singular values, so the what-if projection, the checks
and `apply_` agree on one set of formulas. A layer may be given as a module (anything with
`.weight`) or as its weight shape: (out, in) for Linear, (out, in, kh, kw) for Conv2d.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import torch

METHODS = ("svd", "tucker", "cp")


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


def single_ranks(layer: Any, method: str, rank: int) -> Ranks:
    """The ranks one config `rank` means: clipped to the channels for Tucker, to min(m, n) for SVD."""
    out, inp, kh, kw = layer_dims(layer)
    if method == "tucker":
        return Ranks(min(rank, out), min(rank, inp))
    if method == "svd":
        rank = min(rank, out, inp * kh * kw)
    return Ranks(rank, rank)


def factored_params(layer: Any, method: str, ranks: Ranks | tuple[int, int]) -> int:
    """Weight parameters of the factorized layer; the bias moves to the last factor unchanged."""
    out, inp, kh, kw = layer_dims(layer)
    r_out, r_in = ranks
    if method == "svd":      # (out x r)(r x in·kh·kw)
        return r_out * (out + inp * kh * kw)
    if method == "tucker":   # 1x1 in→r_in, kxk r_in→r_out, 1x1 r_out→out
        return inp * r_in + r_in * r_out * kh * kw + r_out * out
    return r_out * (inp + kh + kw + out)  # cp: pointwise, kh x 1, 1 x kw, pointwise


def break_even_rank(layer: Any, method: str) -> int:
    """Largest single rank whose factorization has fewer weights than the dense layer (0: none)."""
    out, inp, kh, kw = layer_dims(layer)
    dense = out * inp * kh * kw
    if method in ("svd", "cp"):  # r * per_rank < dense  <=>  r <= (dense - 1) // per_rank
        per_rank = factored_params(layer, method, Ranks(1, 1))
        limit = (dense - 1) // per_rank
        return min(limit, out, inp * kh * kw) if method == "svd" else limit
    low, high, best = 1, max(out, inp), 0  # Tucker with clipped ranks is monotone in the rank
    while low <= high:
        mid = (low + high) // 2
        if factored_params(layer, method, single_ranks(layer, method, mid)) < dense:
            best, low = mid, mid + 1
        else:
            high = mid - 1
    return best


def rank_for_fraction(layer: Any, method: str, fraction: float, bias: int = 0) -> int:
    """Largest single rank whose layer (weights + `bias` parameters) keeps at most `fraction`
    of the dense layer's parameters; at least 1."""
    out, inp, kh, kw = layer_dims(layer)
    budget = fraction * (out * inp * kh * kw + bias) - bias
    if method in ("svd", "cp"):
        rank = math.floor(budget / factored_params(layer, method, Ranks(1, 1)) + 1e-9)
        if method == "svd":
            rank = min(rank, out, inp * kh * kw)
        return max(1, rank)
    low, high, best = 1, max(out, inp), 1
    while low <= high:
        mid = (low + high) // 2
        if factored_params(layer, method, single_ranks(layer, method, mid)) <= budget:
            best, low = mid, mid + 1
        else:
            high = mid - 1
    return best


def tucker_ranks_for_fraction(layer: Any, fraction: float, s_out: np.ndarray, s_in: np.ndarray,
                              bias: int = 0) -> Ranks:
    """Per-mode Tucker-2 ranks within a parameter budget, grown greedily by energy per parameter.

    The HOSVD error is bounded by the energy discarded over both modes, so spending the budget
    where a rank buys the most energy minimises that bound. Stops when neither mode can grow.
    """
    out, inp, kh, kw = layer_dims(layer)
    budget = fraction * (out * inp * kh * kw + bias) - bias
    e_out, e_in = _energy_shares(s_out, out), _energy_shares(s_in, inp)
    ranks = Ranks(1, 1)
    while True:
        options = []
        for grown, gain in ((Ranks(ranks.out + 1, ranks.inp), e_out[ranks.out] if ranks.out < out else None),
                            (Ranks(ranks.out, ranks.inp + 1), e_in[ranks.inp] if ranks.inp < inp else None)):
            cost = factored_params(layer, "tucker", grown)
            if gain is not None and cost <= budget:
                options.append((gain / (cost - factored_params(layer, "tucker", ranks)), grown))
        if not options:
            return ranks
        ranks = max(options, key=lambda option: option[0])[1]


def _energy_shares(singular_values: np.ndarray, size: int) -> np.ndarray:
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


def flops_ratio(layer: Any, method: str, ranks: Ranks, stride: tuple[int, int] = (1, 1)) -> float:
    """Multiply-adds of the factorized layer over the dense one, per output position.

    Factors that run before the strided one see the input resolution, taken as the output's
    times the stride (padding ignored), so this is exact for Linear and 1x1 convs and an
    approximation for Tucker and CP.
    """
    out, inp, kh, kw = layer_dims(layer)
    sh, sw = stride
    dense = out * inp * kh * kw
    r_out, r_in = ranks
    if method == "svd":  # the stride sits on the first 1x1 conv: both factors at output resolution
        return factored_params(layer, method, ranks) / dense
    if method == "tucker":
        return (inp * r_in * sh * sw + r_in * r_out * kh * kw + r_out * out) / dense
    return (inp * r_out * sh * sw + r_out * kh * sw + r_out * kw + r_out * out) / dense


def cp_decompose(weight: torch.Tensor, rank: int, n_iter_max: int = 100, tol: float = 1e-7,
                 seed: int = 0) -> list[torch.Tensor]:
    """CP (CANDECOMP/PARAFAC) of a 4-way conv kernel by alternating least squares, initialised
    from the unfoldings' singular vectors as tensorly's `parafac(init="svd")` does.

    Written with einsum for the (out, in, kh, kw) case: the products with the small kernel
    modes stay small, so a 256x256x3x3 kernel takes about a second where tensorly's generic
    Khatri-Rao path takes tens. Returns the four factors (out x R, in x R, kh x R, kw x R) in
    float64, the weights spread so matching columns have equal norms. CP has no closed form:
    even a generous rank is approximate.
    """
    import torch

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
