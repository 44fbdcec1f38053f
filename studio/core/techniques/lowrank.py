"""Rank reduction: truncated SVD for Linear and 1x1 Conv2d, Tucker-2 and CP for Conv2d
(tensorly). Ranks come from the config (absolute, fraction of parameters, or energy) or are
suggested automatically by energy or VBMF; a layer whose factorization would not save
parameters is left dense with a warning. Each method (its formulas, checks and replacement
layer) is a module of `lowrank_methods`, found by name; the replacement layers live in
`lowrank_layers`, the shared rank arithmetic in `lowrank_math`."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Any, Iterator

import torch
from torch import nn

from studio.core.base.errors import StudioError
from studio.core.techniques.base import (ApplyContext, Estimate, LayerChange, Technique, TechniqueConfig, option,
                                         parse_fraction, percent, register, replace_submodule_)
from studio.core.techniques.lowrank_layers import CPConv2d, LowRankConv1x1, LowRankLinear, TuckerConv2d
from studio.core.techniques.lowrank_math import (Ranks, evbmf_rank, kept_energy, layer_dims, rank_for_energy,
                                                 unfolding_singular_values)
from studio.core.techniques.lowrank_methods import (break_even_rank, default_method, factored_params, get_method,
                                                    method_names, method_of_layer, rank_for_fraction)

SOLVERS = ("auto", "exact", "randomized")
DEFAULT_ENERGY = 0.9


@dataclass(frozen=True)
class LowRankConfig(TechniqueConfig):
    """At most one of `rank`, `rank_fraction` (share of the layer's parameters to keep) or
    `energy` (share of squared singular values to keep); none means energy 0.9, so the
    default config is usable as is. `solver` picks the SVD routine (SVD and Tucker)."""

    method: str = option("svd", choices=method_names,
                         help="svd: Linear and 1x1 Conv2d (on an Embedding: albert); tucker and cp: convolutions with "
                              "larger kernels; albert: Embedding tables (ALBERT factorization)")
    rank: int | None = option(None, help="The rank of the factorization (Tucker clips it to each mode's channels)")
    rank_fraction: float | None = option(None, range=(0.0, 1.0), help="Share of the layer's parameters to keep")
    energy: float | None = option(None, range=(0.0, 1.0), start=DEFAULT_ENERGY,
                                  help="Share of the squared singular values to keep")
    solver: str = option("auto", choices=SOLVERS, help="The SVD routine (svd and tucker)")

    def problems(self) -> list[str]:
        out = []
        if self.method not in method_names():
            out.append(f"method {self.method!r} is not one of {', '.join(method_names())}")
        given = [k for k in ("rank", "rank_fraction", "energy") if getattr(self, k) is not None]
        if len(given) > 1:
            out.append(f"give one of rank, rank_fraction or energy, not {' and '.join(given)}")
        if self.rank is not None and (isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1):
            out.append(f"rank {self.rank!r} must be a positive integer")
        if self.rank_fraction is not None and not (_real(self.rank_fraction) and 0 < self.rank_fraction < 1):
            out.append(f"rank_fraction {self.rank_fraction!r} must be a fraction strictly between 0 and 1")
        if self.energy is not None and not (_real(self.energy) and 0 < self.energy <= 1):
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


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _for_layer(module: nn.Module, config: LowRankConfig) -> LowRankConfig:
    """svd on an Embedding table is ALBERT's factorization (lowrank_methods/albert)."""
    return replace(config, method="albert") if isinstance(module, nn.Embedding) and config.method == "svd" else config


# --- rank choice --------------------------------------------------------------------------

def _bias(module: nn.Module) -> int:
    bias = getattr(module, "bias", None)
    return bias.numel() if isinstance(bias, torch.Tensor) else 0


def choose_ranks(module: nn.Module, config: LowRankConfig) -> Ranks:
    """The ranks `config` asks of this layer: (out, in) for Tucker, (r, r) for SVD and CP."""
    method = get_method(config.method)
    dims = layer_dims(module)
    if config.rank is not None:
        return method.single_ranks(dims, config.rank)
    if config.rank_fraction is not None:
        return method.ranks_for_fraction(module, config.rank_fraction, _bias(module))
    energy = config.energy or DEFAULT_ENERGY
    return method.ranks_from_modes(dims, lambda mode: rank_for_energy(unfolding_singular_values(module.weight, mode),
                                                                      energy))


def suggest_ranks(module: nn.Module, method: str = "svd", by: str = "energy",
                  energy: float = DEFAULT_ENERGY) -> Ranks:
    """Automatic ranks per channel mode, by singular-value energy or by EVBMF's noise estimate
    on each unfolding (the MUSCO recipe for Tucker-2)."""
    if by not in ("energy", "vbmf"):
        raise StudioError(f"rank suggestion by {by!r} is not one of energy, vbmf")
    weight = module.weight
    total = float(weight.detach().double().pow(2).sum())

    def one(mode: int) -> int:
        s = unfolding_singular_values(weight, mode)
        rows = weight.shape[mode]
        if by == "vbmf":
            return evbmf_rank(s, rows, weight.numel() // rows, total)
        return rank_for_energy(s, energy)

    return get_method(method).ranks_from_modes(layer_dims(module), one)


def suggest_rank(module: nn.Module, method: str = "svd", by: str = "energy", energy: float = DEFAULT_ENERGY) -> int:
    """One rank for a config's `rank`: the larger of the per-mode suggestions (Tucker clips it
    to each mode's channels)."""
    return max(suggest_ranks(module, method, by, energy))


# --- the replacement and what it keeps -----------------------------------------------------

def factorized_weight(layer: nn.Module) -> torch.Tensor:
    """The dense weight a factorized layer computes (out, in[, kh, kw]), to measure the error."""
    method = method_of_layer(layer)
    if method is None:
        raise StudioError(f"{type(layer).__name__} is not a low-rank layer")
    with torch.no_grad():
        return method.dense_weight(layer)


def _factorize(module: nn.Module, config: LowRankConfig, ranks: Ranks) -> nn.Module:
    with torch.no_grad():
        new = get_method(config.method).factorize(module, ranks, config.solver)
    # The layers copy values in the weight's dtype into default-dtype parameters; keep the original's.
    return new.to(device=module.weight.device, dtype=module.weight.dtype).train(module.training)


def _saves(module: nn.Module, method: str, ranks: Ranks) -> bool:
    return factored_params(module, method, ranks) < module.weight.numel()


def _method_problem(module: nn.Module, method: str) -> str | None:
    return get_method(method).problem(module)


def _subclass_problem(module: nn.Module) -> str | None:
    """The factorized layers compute the plain op; a subclass whose forward does more (e.g.
    TF-"same" padding) would lose it, so it is refused unless a probe shows its forward is the
    plain op (then nothing is lost)."""
    from studio.core.techniques.quant_modules import extra_state, overrides_forward

    if isinstance(module, nn.Embedding) or not overrides_forward(module):
        return None  # tables: the albert method checks their forward
    kind = type(module).__name__
    if extra_state(module):
        return f"{kind} holds state besides weight and bias that a factorized layer would drop; exclude it (lowrank: null)"
    if not _plain_forward(module):
        return (f"{kind} has its own forward (e.g. padding or scaling around the op) that a factorized layer "
                "would drop; exclude it (lowrank: null)")
    return None


def _plain_forward(module: nn.Module) -> bool:
    """Does the subclass's forward give what the plain Conv2d/Linear op gives on a probe input?"""
    weight = module.weight
    if weight.is_meta:
        return False
    generator = torch.Generator().manual_seed(0)
    if isinstance(module, nn.Conv2d):
        size = max(8, 2 * max(module.kernel_size) * max(module.dilation) + 2 * max(module.stride))
        x = torch.randn(1, module.in_channels, size, size + 1, generator=generator)
        plain = nn.Conv2d._conv_forward
    else:
        x = torch.randn(2, module.in_features, generator=generator)
        plain = nn.Linear.forward
    x = x.to(weight.device, weight.dtype)
    try:
        with torch.no_grad():
            got = module(x)
            want = plain(module, x) if isinstance(module, nn.Linear) else plain(module, x, weight, module.bias)
    except Exception:
        return False
    return isinstance(got, torch.Tensor) and got.shape == want.shape and torch.allclose(got, want, rtol=1e-4, atol=1e-5)


# --- the technique ------------------------------------------------------------------------

@register
class LowRank(Technique):
    name = "lowrank"
    config_type = LowRankConfig
    order = 0
    label = "Low-rank…"
    supported_types = "Linear, Conv2d (groups=1), Embedding"
    noun = "rank reduction"
    restructures = True  # a layer becomes two to four factor layers
    aliases = ("rank", "low-rank")
    sweep_defaults = ("rank 50%", "rank 25%", "energy 90%")

    def supports(self, module: nn.Module) -> bool:
        # Subclasses count (their own forward is checked in `check`); MultiheadAttention's out_proj
        # is read through its owner's weight, so replacing it would break the owner.
        if isinstance(module, nn.modules.linear.NonDynamicallyQuantizableLinear):
            return False
        if isinstance(module, nn.Embedding):  # ALBERT-style table factorization
            return True
        return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1)

    def check(self, name: str, module: nn.Module, config: LowRankConfig) -> list[str]:
        config = _for_layer(module, config)
        if config.method not in method_names():
            return []  # config.problems() reports it
        problem = _method_problem(module, config.method) or _subclass_problem(module)
        if problem:
            return [problem]
        out, inp, kh, kw = layer_dims(module)
        kind = (f"{out}x{inp} {type(module).__name__}" if isinstance(module, (nn.Linear, nn.Embedding))
                else f"{out}x{inp}x{kh}x{kw} Conv2d")
        rank = config.rank
        if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
            return []
        largest = get_method(config.method).max_rank(layer_dims(module))
        if largest is not None and rank > largest:
            return [f"rank {rank} exceeds the largest possible rank {largest} of this {kind}; "
                    f"ranks up to {break_even_rank(module, config.method)} save parameters"]
        limit = break_even_rank(module, config.method)
        if limit == 0:
            return [f"no {config.method} rank saves parameters for this {kind}; exclude it (lowrank: null)"]
        if rank > limit:
            return [f"rank {rank} saves no parameters for this {kind} (largest useful rank is {limit})"]
        return []

    def check_model(self, model: nn.Module, targets: dict[str, TechniqueConfig],
                    example_inputs: tuple[tuple[Any, ...], dict[str, Any]]) -> list[str]:
        """Shared modules and tied weights: factorizing one user leaves the other dense, so the
        model grows and the copies drift apart."""
        names: dict[int, list[str]] = defaultdict(list)
        owners: dict[int, list[str]] = defaultdict(list)
        for module_name, module in model.named_modules(remove_duplicate=False):
            names[id(module)].append(module_name)
            for param in module.parameters(recurse=False):
                owners[id(param)].append(module_name)
        problems = []
        for name in targets:
            module = model.get_submodule(name)
            others = [n for n in names[id(module)] if n != name]
            tied = [n for n in owners[id(module.weight)] if n not in names[id(module)]]
            if others:
                problems.append(f"layer {name}: lowrank: the same module is also used as {others[0]}; factorizing "
                                "replaces it under one name only; exclude it (lowrank: null)")
            elif tied:
                problems.append(f"layer {name}: lowrank: its weight is tied to {tied[0]}; factorizing unties it and "
                                "adds parameters; exclude it (lowrank: null)")
        return problems

    def sweep_setting(self, raw: str, text: str) -> tuple[str, dict[str, Any]]:
        """0.25 / rank 25% (share of parameters kept) / energy 90%."""
        energy = raw.startswith(("energy", "e"))
        value = parse_fraction(re.sub(r"^(energy|e|rank|r)\s*", "", raw), "Energy" if energy else "Rank fraction")
        if energy:
            return f"energy {percent(value)}", {"energy": value}
        if value >= 1:
            raise StudioError(f"Rank fraction {text!r} must be below 100%.")
        return f"rank {percent(value)}", {"rank_fraction": value}

    def layer_body(self, body: dict[str, Any], module: nn.Module) -> dict[str, Any]:
        """Without a method, the first registered one that fits the layer (SVD for Linear and
        1x1 convs, Tucker-2 for larger kernels)."""
        return body if "method" in body else {**body, "method": default_method(module)}

    def project(self, module: nn.Module, config: LowRankConfig, estimate: Estimate) -> Estimate:
        config = _for_layer(module, config)
        if config.problems() or _method_problem(module, config.method):
            return estimate
        ranks = choose_ranks(module, config)
        if not _saves(module, config.method, ranks):
            return estimate
        weight, method = module.weight, get_method(config.method)
        after = factored_params(module, config.method, ranks)
        removed = weight.numel() - after
        stride = tuple(module.stride) if isinstance(module, nn.Conv2d) else (1, 1)
        ratio = method.flops_ratio(layer_dims(module), ranks, stride)  # exact or approximate
        nonzero_weight = int(torch.count_nonzero(weight.detach()))
        return Estimate(estimate.params - removed, estimate.bytes - removed * weight.element_size(),
                        int(round(estimate.flops * ratio)), estimate.nonzero - nonzero_weight + after,
                        method.factor_shapes(layer_dims(module), ranks, _bias(module)))

    def coupled_flops(self, model, example_inputs, targets) -> dict[str, int]:
        """ALBERT tables: the r → d projection after the lookup is work added (negative)."""
        from studio.core.techniques.lowrank_methods.albert import projection_flops

        ranks = {}
        for name, config in targets.items():
            module = model.get_submodule(name)
            config = _for_layer(module, config)
            if config.method == "albert" and not config.problems() and not _method_problem(module, config.method):
                chosen = choose_ranks(module, config)
                if _saves(module, config.method, chosen):
                    ranks[name] = chosen.out
        return {name: -flops for name, flops in projection_flops(model, example_inputs, ranks).items()} if ranks else {}

    def apply_(self, model: nn.Module, targets: dict[str, LowRankConfig],
               context: ApplyContext) -> Iterator[LayerChange]:
        for name, config in targets.items():
            context.check_cancel()
            module = model.get_submodule(name)
            config = _for_layer(module, config)
            problem = config.problems() or ([p] if (p := _method_problem(module, config.method)
                                                    or _subclass_problem(module)) else [])
            if problem:
                raise StudioError(f"layer {name}: lowrank: {'; '.join(problem)}")
            before = sum(p.numel() for p in module.parameters())
            ranks = choose_ranks(module, config)
            if not _saves(module, config.method, ranks):
                detail = f"{get_method(config.method).rank_text(ranks)} would not save parameters; left dense"
                context.warnings.append(f"{name}: {detail}")
                yield LayerChange(name, self.name, detail, before, before, skipped=True)
                continue
            new = _factorize(module, config, ranks)
            original = module.weight.detach().double()
            error = float((factorized_weight(new).double().reshape(original.shape) - original).pow(2).sum())
            kept = 1.0 - error / max(float(original.pow(2).sum()), 1e-30)
            replace_submodule_(model, name, new)
            after = sum(p.numel() for p in new.parameters())
            yield LayerChange(name, self.name, f"{config.method} {get_method(config.method).rank_text(ranks)} "
                              f"(energy {kept:.2f})", before, after)


__all__ = ["CPConv2d", "DEFAULT_ENERGY", "LowRank", "LowRankConfig", "LowRankConv1x1", "LowRankLinear", "Ranks",
           "SOLVERS", "TuckerConv2d", "break_even_rank", "choose_ranks", "default_method", "evbmf_rank",
           "factored_params", "factorized_weight", "kept_energy", "rank_for_energy", "rank_for_fraction",
           "suggest_rank", "suggest_ranks"]
