"""Low-rank factorizations registered by name (as tensorly-torch registers its factorizations).

Each method is one module in this package that registers a `LowRankMethod` with
`@register_method("name")`: which layers it can factorize, its parameter and FLOP formulas,
how a rank budget becomes ranks, and how the replacement layer is built. The low-rank
technique, its checks and the what-if projection only ask the method, so adding one is one
new module here (found automatically) plus its tests.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from studio.core.base.discovery import import_submodules
from studio.core.base.errors import StudioError
from studio.core.techniques.lowrank_math import Ranks, layer_dims

if TYPE_CHECKING:
    import torch
    from torch import nn

Dims = tuple[int, int, int, int]  # (out, in, kh, kw); a Linear is a 1x1 kernel


class LowRankMethod:
    """One factorization. Formulas take the layer's dims so the projection needs no weights."""

    name: ClassVar[str] = ""
    priority: ClassVar[int] = 0  # a layer's default method: the lowest priority that fits it
    layer_classes: ClassVar[tuple[type, ...]] = ()  # the replacement layers it builds

    def problem(self, module: nn.Module) -> str | None:
        """Why this method cannot factorize `module` (a supported Linear/Conv2d); None when it can."""
        return None

    def single_ranks(self, dims: Dims, rank: int) -> Ranks:
        """The ranks one config `rank` means for this layer."""
        return Ranks(rank, rank)

    def max_rank(self, dims: Dims) -> int | None:
        """The largest rank the factorization can have (None: no hard limit)."""
        return None

    def factored_params(self, dims: Dims, ranks: Ranks) -> int:
        """Weight parameters of the factorized layer; the bias moves to the last factor unchanged."""
        raise NotImplementedError

    def break_even_rank(self, dims: Dims) -> int:
        """Largest single rank with fewer weights than the dense layer (0: none). Searched over
        `single_ranks`, which suits any method whose size grows with the rank."""
        out, inp, kh, kw = dims
        low, high, best = 1, max(out, inp), 0
        while low <= high:
            mid = (low + high) // 2
            if self.factored_params(dims, self.single_ranks(dims, mid)) < out * inp * kh * kw:
                best, low = mid, mid + 1
            else:
                high = mid - 1
        return best

    def rank_for_fraction(self, dims: Dims, fraction: float, bias: int = 0) -> int:
        """Largest single rank whose layer (weights + `bias`) keeps at most `fraction` of the
        dense layer's parameters; at least 1."""
        out, inp, kh, kw = dims
        budget = fraction * (out * inp * kh * kw + bias) - bias
        low, high, best = 1, max(out, inp), 1
        while low <= high:
            mid = (low + high) // 2
            if self.factored_params(dims, self.single_ranks(dims, mid)) <= budget:
                best, low = mid, mid + 1
            else:
                high = mid - 1
        return best

    def ranks_for_fraction(self, module: nn.Module, fraction: float, bias: int = 0) -> Ranks:
        """The ranks a config's `rank_fraction` means for this layer."""
        dims = layer_dims(module)
        return self.single_ranks(dims, self.rank_for_fraction(dims, fraction, bias))

    def ranks_from_modes(self, dims: Dims, rank_of: Callable[[int], int]) -> Ranks:
        """Ranks from a per-unfolding rule (mode 0: outputs, 1: inputs), e.g. energy or VBMF."""
        raise NotImplementedError

    def flops_ratio(self, dims: Dims, ranks: Ranks, stride: tuple[int, int] = (1, 1)) -> float:
        """Multiply-adds of the factorized layer over the dense one, per output position."""
        raise NotImplementedError

    def factor_shapes(self, dims: Dims, ranks: Ranks, bias: int) -> tuple[tuple[int, int, int], ...]:
        """(out, fan-in, bias) of each weight-bearing layer `factorize` builds, in order."""
        raise NotImplementedError

    def factorize(self, module: nn.Module, ranks: Ranks, solver: str) -> nn.Module:
        """The replacement layer (built from standard Linear/Conv2d children)."""
        raise NotImplementedError

    def dense_weight(self, layer: nn.Module) -> torch.Tensor:
        """The dense weight (out, in[, kh, kw]) one of `layer_classes` computes."""
        raise NotImplementedError

    def rank_text(self, ranks: Ranks) -> str:
        return f"rank {ranks.out}"


_REGISTRY: dict[str, LowRankMethod] = {}
def register_method(name: str) -> Callable[[type[LowRankMethod]], type[LowRankMethod]]:
    """Class decorator: `@register_method("svd")` makes the method available by that name."""

    def decorate(cls: type[LowRankMethod]) -> type[LowRankMethod]:
        cls.name = name
        _REGISTRY[name] = cls()
        return cls

    return decorate


def all_methods() -> dict[str, LowRankMethod]:
    """Name → method in priority order; imports every module of this package once."""
    import_submodules(__name__, __path__)
    return dict(sorted(_REGISTRY.items(), key=lambda item: item[1].priority))


def method_names() -> tuple[str, ...]:
    return tuple(all_methods())


def get_method(name: str) -> LowRankMethod:
    methods = all_methods()
    if name not in methods:
        raise StudioError(f"method {name!r} is not one of {', '.join(methods)}")
    return methods[name]


def default_method(module: nn.Module) -> str:
    """The method a plan picks for a layer when none is given: the first that fits it."""
    methods = all_methods()
    return next((n for n, m in methods.items() if m.problem(module) is None), next(iter(methods)))


def method_of_layer(layer: nn.Module) -> LowRankMethod | None:
    """The method whose replacement layer `layer` is (None for any other module)."""
    return next((m for m in all_methods().values() if isinstance(layer, m.layer_classes)), None)


def zero_padding_problem(module: nn.Module, name: str) -> str | None:
    """Factor layers that pad in a separate small conv keep only zero padding."""
    padding = module.padding
    padded = padding == "same" if isinstance(padding, str) else any(padding)
    if padded and module.padding_mode != "zeros":
        return f"{name} keeps only zero padding and this conv pads with {module.padding_mode!r}; use tucker"
    return None


def linear_budget_rank(dims: Dims, per_rank: int, fraction: float, bias: int) -> int:
    """For methods whose size is `rank * per_rank`: the largest rank within the budget (≥ 1)."""
    out, inp, kh, kw = dims
    budget = fraction * (out * inp * kh * kw + bias) - bias
    return max(1, math.floor(budget / per_rank + 1e-9))


# --- the same by name, for callers holding a layer (or its weight shape) and a method name ---

def _ranks(ranks: Ranks | tuple[int, int]) -> Ranks:
    return Ranks(*ranks)


def single_ranks(layer: Any, method: str, rank: int) -> Ranks:
    return get_method(method).single_ranks(layer_dims(layer), rank)


def factored_params(layer: Any, method: str, ranks: Ranks | tuple[int, int]) -> int:
    return get_method(method).factored_params(layer_dims(layer), _ranks(ranks))


def break_even_rank(layer: Any, method: str) -> int:
    return get_method(method).break_even_rank(layer_dims(layer))


def rank_for_fraction(layer: Any, method: str, fraction: float, bias: int = 0) -> int:
    return get_method(method).rank_for_fraction(layer_dims(layer), fraction, bias)


def flops_ratio(layer: Any, method: str, ranks: Ranks | tuple[int, int], stride: tuple[int, int] = (1, 1)) -> float:
    return get_method(method).flops_ratio(layer_dims(layer), _ranks(ranks), stride)


__all__ = ["Dims", "LowRankMethod", "all_methods", "break_even_rank", "default_method", "factored_params",
           "flops_ratio", "get_method", "method_names", "method_of_layer", "rank_for_fraction", "register_method",
           "single_ranks"]
