"""Attention-head pruning for BERT-family self-attention (BertAttention, RobertaAttention, …):
whole heads go, with the query/key/value rows and the output projection's input columns of
each head removed together (transformers' `prune_linear_layer`, the maintainers' own tool).

Which heads go: Michel et al. 2019 ("Are sixteen heads really better than one?"): a head's
importance is |∂L/∂ξ_h| summed over the data, ξ_h a mask multiplying the head's output, L the
cross-entropy against the model's own predictions (the calibration data carry no labels; this
is the empirical Fisher form). Or `l2`: the norm of the head's weights; or an explicit list.

How many go is fixed by the config alone (never by the data), so replaying a recipe on the
original rebuilds the same shapes and a compressed folder reopens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from studio.core.base.errors import StudioError
from studio.core.techniques.forward_probe import hooked_forward
from studio.core.techniques.base import (ApplyContext, Estimate, LayerChange, Technique, TechniqueConfig,
                                         option, register)

IMPORTANCE = ("gradient", "l2")
MAX_SCORE_BATCHES = 32
KEPT_HEADS = "studio_kept_heads"  # on a pruned self-attention: each kept head's number in the original


@dataclass(frozen=True)
class HeadsConfig(TechniqueConfig):
    amount: float = option(0.5, range=(0.0, 1.0), help="Share of this layer's heads to remove (at least one stays)")
    keep: int | None = option(None, range=(1, 64), start=6,
                              help="Heads to keep in this layer; when set, it wins over amount")
    remove: str | None = option(None, help="Exact heads to remove, e.g. '0,3,7'; wins over keep and amount")
    importance: str = option("gradient", choices=IMPORTANCE,
                             help="gradient: Michel et al.'s |dL/d head mask| on the calibration data; "
                                  "l2: the norm of each head's weights")

    def problems(self) -> list[str]:
        out = []
        if not (isinstance(self.amount, (int, float)) and not isinstance(self.amount, bool) and 0 < self.amount < 1):
            out.append(f"amount {self.amount!r} must be a fraction strictly between 0 and 1")
        if self.keep is not None and (isinstance(self.keep, bool) or not isinstance(self.keep, int)
                                      or not 1 <= self.keep <= 64):
            out.append(f"keep {self.keep!r} must be a whole number of heads from 1 to 64")
        if self.remove is not None and _parse_heads(self.remove) is None:
            out.append(f"remove {self.remove!r} must list head numbers separated by commas, e.g. '0,3,7'")
        if self.importance not in IMPORTANCE:
            out.append(f"importance {self.importance!r} is not one of {', '.join(IMPORTANCE)}")
        return out

    def summary(self) -> str:
        if self.remove is not None:
            return f"heads -[{self.remove}]"
        if self.keep is not None:
            return f"keep {self.keep} heads ({self.importance})"
        return f"heads -{self.amount:.0%} ({self.importance})"


def _parse_heads(text: str) -> list[int] | None:
    try:
        heads = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        return None
    return heads if heads and all(h >= 0 for h in heads) and len(set(heads)) == len(heads) else None


def attention_parts(module: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """(self-attention, its output block) of a BERT-family attention module, or None."""
    inner, out = getattr(module, "self", None), getattr(module, "output", None)
    if inner is None or out is None or not isinstance(getattr(out, "dense", None), nn.Linear):
        return None
    if not all(isinstance(getattr(inner, n, None), nn.Linear) for n in ("query", "key", "value")):
        return None
    if not isinstance(getattr(inner, "attention_head_size", None), int):
        return None
    return inner, out


def head_count(module: nn.Module) -> tuple[int, int]:
    """(heads, size of one head) as the weights say (a pruned layer has fewer than the config)."""
    inner, _ = attention_parts(module)
    size = inner.attention_head_size
    return inner.query.out_features // size, size


def removed_heads(config: HeadsConfig, heads: int) -> int:
    """How many heads `config` removes from a layer of `heads` (at least one stays)."""
    if config.remove is not None:
        return len(_parse_heads(config.remove) or [])
    if config.keep is not None:
        return max(0, heads - config.keep)
    return min(int(heads * config.amount), heads - 1)


@register
class Heads(Technique):
    name = "heads"
    config_type = HeadsConfig
    order = -1  # structure first: pruning and quantization then work on what is left
    label = "Prune attention heads…"
    supported_types = "BERT-family attention (BertAttention, RobertaAttention, …)"
    noun = "head pruning"

    def supports(self, module: nn.Module) -> bool:
        return attention_parts(module) is not None

    def check(self, name: str, module: nn.Module, config: HeadsConfig) -> list[str]:
        heads, _ = head_count(module)
        out = []
        if config.remove is not None:
            listed = _parse_heads(config.remove) or []
            if any(h >= heads for h in listed):
                out.append(f"remove lists head {max(listed)} but this layer has heads 0–{heads - 1}")
            elif len(listed) >= heads:
                out.append(f"remove would take all {heads} heads; keep at least one")
        elif config.keep is not None and config.keep > heads:
            out.append(f"keep {config.keep} is more than this layer's {heads} heads")
        if not out and removed_heads(config, heads) < 1:
            out.append(f"this removes no head of {heads}")
        return out

    def project(self, module: nn.Module, config: HeadsConfig, estimate: Estimate) -> Estimate:
        # The projections inside shrink; they are reported as coupled layers (coupled_effects),
        # so a quantized projection shrinks from its own quantized size, counted once.
        return estimate

    def coupled_effects(self, model, example_inputs, targets) -> dict[str, float]:
        kept: dict[str, float] = {}
        for name, config in targets.items():
            module = model.get_submodule(name)
            heads, _ = head_count(module)
            share = (heads - removed_heads(config, heads)) / heads
            inner, out = attention_parts(module)
            for child in ("query", "key", "value"):
                kept[f"{name}.self.{child}"] = share
            kept[f"{name}.output.dense"] = _dense_share(out.dense, share)
        return kept

    def coupled_flops(self, model, example_inputs, targets) -> dict[str, int]:
        """QKᵀ and probabilities × V of the removed heads (no parameter-holding layer counts them)."""
        tokens = attention_tokens(model, example_inputs, list(targets))
        out = {}
        for name, config in targets.items():
            if name not in tokens:
                continue
            module = model.get_submodule(name)
            heads, size = head_count(module)
            gone = removed_heads(config, heads)
            share, width = (heads - gone) / heads, (heads - gone) * size
            removed = score_flops(*tokens[name], gone * size)
            # The coupled rows shrink their FLOPs by their parameter share (as _add_coupled does);
            # a projection really keeps `width` rows (q/k/v) or input columns (output.dense).
            inner, block = attention_parts(module)
            tokens_in = tokens[name][0] * tokens[name][1]
            for layer in (inner.query, inner.key, inner.value):
                removed += int(2 * tokens_in * layer.in_features * layer.out_features * share) \
                    - 2 * tokens_in * layer.in_features * width
            dense = block.dense
            removed += int(2 * tokens_in * dense.in_features * dense.out_features * _dense_share(dense, share)) \
                - 2 * tokens_in * width * dense.out_features
            out[name] = removed
        return out

    def apply_(self, model: nn.Module, targets: dict[str, HeadsConfig],
               context: ApplyContext) -> Iterator[LayerChange]:
        gradient = [n for n, c in targets.items() if c.remove is None and c.importance == "gradient"]
        scores = gradient_scores(model, gradient, context) if gradient else {}
        for name, config in targets.items():
            context.check_cancel()
            module = model.get_submodule(name)
            before = sum(p.numel() for p in module.parameters())
            heads, _ = head_count(module)
            if config.remove is not None:
                gone = sorted(_parse_heads(config.remove))
            else:
                score = scores[name] if name in scores else l2_scores(module)
                gone = sorted(score.argsort()[:removed_heads(config, heads)].tolist())
            prune_heads_(module, gone)
            after = sum(p.numel() for p in module.parameters())
            how = "listed" if config.remove is not None else config.importance
            yield LayerChange(name, self.name, f"removed heads {gone} of {heads} ({how}); "
                                               f"{heads - len(gone)} left", before, after)


def _dense_share(dense: nn.Linear, share: float) -> float:
    """Share of the output projection's parameters kept: `share` of its input columns, all its bias."""
    bias = dense.bias.numel() if dense.bias is not None else 0
    return (round(dense.weight.numel() * share) + bias) / (dense.weight.numel() + bias)


def score_flops(batch: int, queries: int, keys: int, width: int) -> int:
    """FLOPs of QKᵀ and of the probabilities times V for `width` = heads × head size, two per
    multiply-add (as PyTorch's FLOP counter counts matmuls and SDPA)."""
    return 2 * 2 * batch * queries * keys * width


def attention_tokens(model: nn.Module, example_inputs: tuple[tuple[Any, ...], dict[str, Any]],
                     names: list[str]) -> dict[str, tuple[int, int, int]]:
    """(batch, queries, keys) each named attention block sees on the example inputs: one forward
    pass without gradients, in eval mode (restored after), reading the hidden states' shape."""
    seen: dict[str, tuple[int, int, int]] = {}
    handles = []
    for name in names:
        parts = attention_parts(model.get_submodule(name))
        if parts is None:
            continue

        def hook(_module, args, kwargs, name=name):
            x = args[0] if args else kwargs.get("hidden_states")
            if isinstance(x, torch.Tensor) and x.dim() == 3:
                seen[name] = (int(x.shape[0]), int(x.shape[1]), int(x.shape[1]))  # self-attention: keys = queries
        handles.append(parts[0].register_forward_pre_hook(hook, with_kwargs=True))
    hooked_forward(model, example_inputs, handles)  # on failure the projection stays without this term
    return seen


def prune_heads_(module: nn.Module, heads: list[int]) -> None:
    """Remove `heads` (numbers in the layer as it is now) from query/key/value and the output projection."""
    from transformers.pytorch_utils import prune_linear_layer

    inner, out = attention_parts(module)
    total, size = head_count(module)
    keep = [h for h in range(total) if h not in set(heads)]
    if not keep:
        raise StudioError("head pruning would remove every head of a layer; keep at least one.")
    index = torch.tensor([h * size + i for h in keep for i in range(size)], dtype=torch.long)
    dtype = inner.query.weight.dtype
    for child in ("query", "key", "value"):
        setattr(inner, child, prune_linear_layer(getattr(inner, child), index).to(dtype))
    out.dense = prune_linear_layer(out.dense, index, dim=1).to(dtype)
    inner.num_attention_heads = len(keep)
    inner.all_head_size = len(keep) * size
    origin = list(getattr(inner, KEPT_HEADS, None) or range(total))  # composes with an earlier pruning
    origin = origin if len(origin) == total else list(range(total))
    setattr(inner, KEPT_HEADS, tuple(origin[h] for h in keep))  # TinyBERT's attention loss matches these


def l2_scores(module: nn.Module) -> torch.Tensor:
    """Each head's weight norm over query, key, value rows and output-projection columns."""
    inner, out = attention_parts(module)
    heads, size = head_count(module)
    with torch.no_grad():
        rows = sum(getattr(inner, c).weight.float().reshape(heads, size, -1).pow(2).sum((1, 2))
                   for c in ("query", "key", "value"))
        cols = out.dense.weight.float().reshape(out.dense.out_features, heads, size).pow(2).sum((0, 2))
    return (rows + cols).sqrt()


def gradient_scores(model: nn.Module, names: list[str], context: ApplyContext) -> dict[str, torch.Tensor]:
    """Michel et al.'s importance: Σ_batches |∂L/∂ξ_h|, with a mask ξ (all ones) scaling each
    head's context before the output projection (a forward pre-hook: no model code changes)."""
    masks, handles = {}, []
    for name in names:
        module = model.get_submodule(name)
        heads, size = head_count(module)
        mask = torch.ones(heads, requires_grad=True)
        masks[name] = mask
        handles.append(attention_parts(module)[1].dense.register_forward_pre_hook(_masking(mask, size)))
    scores = {name: torch.zeros(mask.numel()) for name, mask in masks.items()}
    training = model.training
    model.eval()
    try:
        for index, (args, kwargs) in enumerate(context.calibration_batches()):
            if index >= MAX_SCORE_BATCHES:
                break
            context.check_cancel()
            with torch.enable_grad():
                loss = _self_label_loss(model(*args, **kwargs))
                grads = torch.autograd.grad(loss, list(masks.values()), allow_unused=True)
            for name, grad in zip(masks, grads):
                if grad is not None:
                    scores[name] += grad.detach().abs()
    finally:
        for handle in handles:
            handle.remove()
        model.train(training)
    return scores


def _masking(mask: torch.Tensor, size: int):
    def hook(_module, args):
        x = args[0]
        return (x * mask.to(x.dtype).repeat_interleave(size),) + tuple(args[1:])
    return hook


def _first_tensor(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    for key in ("logits", "last_hidden_state"):
        value = getattr(output, key, None)
        if isinstance(value, torch.Tensor):
            return value
    if isinstance(output, (tuple, list)) and output:
        return _first_tensor(output[0])
    raise StudioError("head importance needs a model whose output is a tensor (logits or hidden states).")


def _self_label_loss(output: Any) -> torch.Tensor:
    """Cross-entropy against the model's own top class (over the last axis)."""
    logits = _first_tensor(output).float()
    flat = logits.reshape(-1, logits.shape[-1])
    return nn.functional.cross_entropy(flat, flat.argmax(-1).detach())
