"""What-if budget: projected params, bytes and FLOPs of a plan, computed from the plan and
the inspected tree without running anything (the window updates it on every edit)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from studio.core.model.model_tree import LayerNode, ModelTree
from studio.core.plan import CompressionPlan
from studio.core.plan.resolve import resolve_plan
from studio.core.techniques import all_techniques
from studio.core.techniques.base import Estimate

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class LayerProjection:
    name: str
    techniques: tuple[str, ...]   # e.g. ("lowrank: svd r=32", "quantize: int8 w/a-dyn")
    before: Estimate
    after: Estimate
    coupled: bool = False         # not marked: shrinks because a marked layer changes (coupled channels)

    @property
    def saved_params(self) -> int:
        return self.before.params - self.after.params


@dataclass(frozen=True)
class PlanProjection:
    before: Estimate
    after: Estimate
    layers: dict[str, LayerProjection] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # per pattern rule: the matched layers its technique skips (not applied)


def _estimate(node: LayerNode) -> Estimate:
    """A weightless model's zeros are unknown: its projection takes the weights as dense."""
    zeros = node.zero_params or 0
    return Estimate(node.total_params, node.bytes, node.flops, node.total_params - zeros)


def project_plan(plan: CompressionPlan, model: nn.Module, tree: ModelTree,
                 example_inputs: tuple[tuple[Any, ...], dict[str, Any]] | None = None) -> PlanProjection:
    """With `example_inputs`, a technique's coupled effects count too (e.g. structured pruning
    shrinks the BatchNorm and the next layer's inputs), as the run will measure them, and the
    whole-model checks run, so a pattern skips the layers the run skips (e.g. the output layer)."""
    techniques = all_techniques()
    resolution = resolve_plan(plan, model, example_inputs, cached=True)
    assignments = resolution.assignments
    per_layer: dict[str, list[tuple[str, object]]] = {}
    for key in techniques:
        for name, config in assignments.get(key, {}).items():
            per_layer.setdefault(name, []).append((key, config))
    layers = {}
    for name, items in per_layer.items():
        if name not in tree:
            continue
        module = model.get_submodule(name)
        before = _estimate(tree[name])
        after = before
        for key, config in items:
            after = techniques[key].project(module, config, after)
        layers[name] = LayerProjection(name, tuple(f"{k}: {c.summary()}" for k, c in items), before, after)
    if example_inputs is not None:
        for key, technique in techniques.items():
            if assignments.get(key):
                _add_coupled(layers, technique.coupled_effects(model, example_inputs, assignments[key]), model, tree)
                for name, removed in technique.coupled_flops(model, example_inputs, assignments[key]).items():
                    if name in layers:  # work between the layers (attention scores) that goes with them
                        p = layers[name]
                        layers[name] = replace(p, after=replace(p.after, flops=max(0, p.after.flops - removed)))
        _count_nested_removals_once(layers, tree)
    total_before = _estimate(tree.root)
    delta = [(p.after.params - p.before.params, p.after.bytes - p.before.bytes, p.after.flops - p.before.flops,
              p.after.nonzero - p.before.nonzero) for p in layers.values()]
    total_after = Estimate(total_before.params + sum(d[0] for d in delta), total_before.bytes + sum(d[1] for d in delta),
                           total_before.flops + sum(d[2] for d in delta), total_before.nonzero + sum(d[3] for d in delta))
    return PlanProjection(total_before, total_after, layers, resolution.problems, resolution.warnings)


def _add_coupled(layers: dict[str, LayerProjection], kept: dict[str, float], model: nn.Module, tree: ModelTree) -> None:
    """Shrink each layer by the share of its own parameters a technique's coupled effects keep."""
    for name, share in kept.items():
        if name not in tree:
            continue
        if name in layers:  # marked too (e.g. quantized): its projected result shrinks as well
            p = layers[name]
            shrunk = Estimate(int(p.after.params * share), int(p.after.bytes * share), int(p.after.flops * share),
                              int(p.after.nonzero * share))
            layers[name] = LayerProjection(name, p.techniques, p.before, shrunk, p.coupled)
            continue
        before = _estimate(tree[name])
        own = sum(p.numel() for p in model.get_submodule(name).parameters(recurse=False))
        removed = int(round(own * (1 - share)))
        size = before.bytes / before.params if before.params else 4
        after = Estimate(before.params - removed, before.bytes - int(removed * size), int(before.flops * share),
                         before.nonzero - removed)
        layers[name] = LayerProjection(name, ("coupled",), before, after, True)


def _count_nested_removals_once(layers: dict[str, LayerProjection], tree: ModelTree) -> None:
    """No layer's subtree projects below zero FLOPs. Removals nested in one layer are each exact
    alone but can overlap: a dropped layer takes its whole attention scores, and head pruning of
    the same layer also takes its removed heads' scores and re-counts its projections. The
    excess goes back to the outer layer, deepest first (a dropped layer then projects zero)."""
    for name in sorted(layers, key=lambda n: n.count("."), reverse=True):
        inside = [p for n, p in layers.items() if n == name or n.startswith(name + ".")]
        total = tree[name].flops + sum(p.after.flops - p.before.flops for p in inside)
        if total < 0:
            p = layers[name]
            layers[name] = replace(p, after=replace(p.after, flops=p.after.flops - total))
