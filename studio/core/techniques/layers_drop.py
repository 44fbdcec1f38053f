"""Layer dropping (DistilBERT, TinyBERT): whole encoder layers leave the model. The layer list
shrinks and the config's `num_hidden_layers` follows, so the model stays what its config says.

Dropping renumbers the layers after the dropped ones, so it runs last (after every technique
that found its layers by their original names). The model keeps `studio_layer_map`, each
kept layer's new name → its name in the original, which fine-tuning reads to distil each
student layer from the teacher layer it came from (hidden-state MSE on mapped layers)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from torch import nn

from studio.core.techniques.heads import attention_parts, attention_tokens, score_flops
from studio.core.techniques.base import (ApplyContext, Estimate, LayerChange, Technique, TechniqueConfig,
                                         option, register)

LAYER_MAP = "studio_layer_map"  # attribute on the compressed model: new layer name → original name


@dataclass(frozen=True)
class DropConfig(TechniqueConfig):
    keep_every: int | None = option(None, range=(2, 12), start=2,
                                    help="Unset: drop every layer this rule matches. k: of the matched layers keep "
                                         "every k-th (counting back from the last, which always stays), drop the rest")

    def problems(self) -> list[str]:
        if self.keep_every is not None and (isinstance(self.keep_every, bool) or not isinstance(self.keep_every, int)
                                            or not 2 <= self.keep_every <= 12):
            return [f"keep_every {self.keep_every!r} must be a whole number from 2 to 12"]
        return []

    def summary(self) -> str:
        return "drop layer" if self.keep_every is None else f"keep every {self.keep_every}"


def is_encoder_layer(module: nn.Module) -> bool:
    """A BERT-family encoder layer: attention, intermediate and output blocks."""
    return all(isinstance(getattr(module, part, None), nn.Module) for part in ("attention", "intermediate", "output"))


def _split(name: str) -> tuple[str, int] | None:
    parent, _, index = name.rpartition(".")
    return (parent, int(index)) if parent and index.isdigit() else None


def dropped_layers(model: nn.Module, targets: dict[str, DropConfig]) -> dict[str, list[int]]:
    """{layer list: indices that go}: `drop: true` layers, and for `keep_every: k` the matched
    layers not at positions last, last-k, last-2k… among the matched ones."""
    groups: dict[str, list[tuple[int, DropConfig]]] = {}
    for name, config in targets.items():
        split = _split(name)
        if split is not None:
            groups.setdefault(split[0], []).append((split[1], config))
    out: dict[str, list[int]] = {}
    for parent, items in groups.items():
        items.sort()
        plain = [i for i, c in items if c.keep_every is None]
        by_every: dict[int, list[int]] = {}
        for i, c in items:
            if c.keep_every is not None:
                by_every.setdefault(c.keep_every, []).append(i)
        gone = set(plain)
        for every, indices in by_every.items():
            gone |= {i for pos, i in enumerate(reversed(indices)) if pos % every}
        out[parent] = sorted(gone)
    return out


@register
class DropLayers(Technique):
    name = "drop"
    config_type = DropConfig
    order = 9  # last: it renumbers the layers every other technique found by name
    label = "Drop layer…"
    supported_types = "BERT-family encoder layers (BertLayer, RobertaLayer, …)"
    noun = "layer dropping"

    def supports(self, module: nn.Module) -> bool:
        return is_encoder_layer(module)

    def check_model(self, model, targets, example_inputs) -> list[str]:
        problems = []
        for parent, gone in dropped_layers(model, targets).items():
            try:
                layers = model.get_submodule(parent)
            except AttributeError:
                layers = None
            if not isinstance(layers, nn.ModuleList):
                problems.append(f"layer {parent}: drop: only layers held in a layer list can be dropped")
            elif len(gone) >= len(layers):
                problems.append(f"layer {parent}: drop: this would remove all {len(layers)} layers; keep at least one")
        for name in targets:
            if _split(name) is None:
                problems.append(f"layer {name}: drop: only numbered layers of a layer list can be dropped")
        return problems

    def project(self, module: nn.Module, config: DropConfig, estimate: Estimate) -> Estimate:
        # What goes is reported per parameter-holding layer inside (coupled_effects), so a layer
        # also quantized or pruned by another rule is counted once. Those count every parameter
        # as a removed non-zero; the zero-valued ones (a LayerNorm bias at initialisation) were
        # never counted as non-zero, so they are given back here.
        zeros = sum(int((p == 0).sum()) for p in module.parameters())
        return Estimate(estimate.params, estimate.bytes, estimate.flops, estimate.nonzero + zeros)

    def changes_other_layers(self, config: DropConfig) -> bool:
        return True  # the layer list and the shared config change: apply needs a full copy

    def coupled_effects(self, model, example_inputs, targets) -> dict[str, float]:
        kept: dict[str, float] = {}
        for parent, gone in dropped_layers(model, targets).items():
            for index in gone:
                prefix = f"{parent}.{index}"
                for name, module in model.get_submodule(prefix).named_modules(prefix=prefix):
                    if any(True for _ in module.parameters(recurse=False)):
                        kept[name] = 0.0
        return kept

    def coupled_flops(self, model, example_inputs, targets) -> dict[str, int]:
        """The attention scores of each dropped layer (its linears go through coupled_effects)."""
        attentions: dict[str, list[str]] = {}
        for parent, gone in dropped_layers(model, targets).items():
            for index in gone:
                prefix = f"{parent}.{index}"
                attentions[prefix] = [n for n, m in model.get_submodule(prefix).named_modules(prefix=prefix)
                                      if attention_parts(m) is not None]
        tokens = attention_tokens(model, example_inputs, [n for names in attentions.values() for n in names])
        out = {}
        for prefix, names in attentions.items():
            removed = sum(score_flops(*tokens[n], attention_parts(model.get_submodule(n))[0].query.out_features)
                          for n in names if n in tokens)
            if prefix in targets and removed:
                out[prefix] = removed
        return out

    def apply_(self, model: nn.Module, targets: dict[str, DropConfig],
               context: ApplyContext) -> Iterator[LayerChange]:
        mapping: dict[str, str] = dict(getattr(model, LAYER_MAP, {}) or {})
        for parent, gone in dropped_layers(model, targets).items():
            context.check_cancel()
            layers = model.get_submodule(parent)
            count = len(layers)
            before = {i: sum(p.numel() for p in layers[i].parameters()) for i in range(count)}
            kept = [i for i in range(count) if i not in set(gone)]
            old_names = {i: f"{parent}.{i}" for i in range(count)}
            origin = {i: mapping.get(old_names[i], old_names[i]) for i in range(count)}  # composes with earlier drops
            for index in reversed(gone):
                del layers[index]
            for index in range(count):
                mapping.pop(old_names[index], None)
            for new, old in enumerate(kept):
                _renumber(layers[new], new)
                mapping[f"{parent}.{new}"] = origin[old]
            _follow_config_(model, count, len(kept))
            moved = ", ".join(f"{old}→{new}" for new, old in enumerate(kept) if new != old) or "none"
            for index in gone:
                name = old_names[index]
                if name in targets:
                    yield LayerChange(name, self.name, f"dropped ({count} → {len(kept)} layers; renumbered {moved})",
                                      before[index], 0)
        setattr(model, LAYER_MAP, mapping)


def _renumber(layer: nn.Module, index: int) -> None:
    """Modules that know their position (for caches) learn the new one."""
    for module in layer.modules():
        if isinstance(getattr(module, "layer_idx", None), int):
            module.layer_idx = index


def _follow_config_(model: nn.Module, before: int, after: int) -> None:
    seen: set[int] = set()
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and id(config) not in seen and getattr(config, "num_hidden_layers", None) == before:
            seen.add(id(config))
            config.num_hidden_layers = after
