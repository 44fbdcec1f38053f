"""Pruning: unstructured magnitude (torch.nn.utils.prune), semi-structured 2:4, and
structured channel/neuron removal through Torch-Pruning's dependency graph, which keeps
BatchNorm, following layers, residual adds and depthwise convs consistent."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from studio.core.base.errors import StudioError
from studio.core.techniques.forward_probe import hooked_forward
from studio.core.techniques.base import (ApplyContext, Estimate, LayerChange, Technique, TechniqueConfig,
                                         option, parse_fraction, percent, register)

MODES = ("unstructured", "structured", "2:4")
IMPORTANCE = ("l1", "l2")
ATTENTION_PROJECTIONS = {"query", "key", "value", "q_proj", "k_proj", "v_proj", "in_proj", "qkv", "c_attn",
                         "q_lin", "k_lin", "v_lin"}  # the last: DistilBERT


@dataclass(frozen=True)
class PruneConfig(TechniqueConfig):
    mode: str = option("unstructured", choices=MODES,
                       help="unstructured: single weights; structured: whole channels or neurons, with the layers "
                            "they feed; 2:4: two of every four inputs")
    amount: float = option(0.5, range=(0.0, 1.0), help="Share of weights (or channels) to remove; 2:4 removes half")
    importance: str = option("l2", choices=IMPORTANCE, help="The norm that ranks channels for structured pruning")

    def problems(self) -> list[str]:
        out = []
        if self.mode not in MODES:
            out.append(f"mode {self.mode!r} is not one of {', '.join(MODES)}")
        if self.mode != "2:4" and not (isinstance(self.amount, (int, float)) and 0 < self.amount < 1):
            out.append(f"amount {self.amount!r} must be a fraction strictly between 0 and 1")
        if self.importance not in IMPORTANCE:
            out.append(f"importance {self.importance!r} is not one of {', '.join(IMPORTANCE)}")
        return out

    def summary(self) -> str:
        if self.mode == "2:4":
            return "2:4 sparse"
        return f"{self.mode} {self.amount:.0%} {self.importance}"


def _out_units(module: nn.Module) -> int:
    return module.out_channels if isinstance(module, nn.Conv2d) else module.out_features


def _weight_and_bias(module: nn.Module) -> int:
    return module.weight.numel() + (module.bias.numel() if module.bias is not None else 0)


@register
class Prune(Technique):
    name = "prune"
    config_type = PruneConfig
    order = 1
    label = "Prune…"
    supported_types = "Linear, Conv2d"
    noun = "pruning"
    aliases = ("pruning",)
    sweep_defaults = ("prune 30%", "prune 50%", "prune 70%", "struct 30%", "struct 50%")

    def supports(self, module: nn.Module) -> bool:
        # By behaviour, not class name: subclasses (TF-"same" padded convs, …) count; pruning edits
        # weights in place (or through Torch-Pruning's graph), so whatever the subclass adds stays.
        # MultiheadAttention's out_proj is pruned through its owner, not on its own.
        return isinstance(module, (nn.Linear, nn.Conv2d)) and not isinstance(
            module, nn.modules.linear.NonDynamicallyQuantizableLinear)

    def check(self, name: str, module: nn.Module, config: PruneConfig) -> list[str]:
        out = []
        if config.mode == "2:4":
            fan_in = module.weight[0].numel()
            if fan_in % 4:
                out.append(f"2:4 sparsity needs the input size to be a multiple of 4 (this layer has {fan_in})")
        if config.mode == "structured":
            if name.rsplit(".", 1)[-1] in ATTENTION_PROJECTIONS:
                out.append("structured pruning of attention projections would break the head layout; "
                           "prune the feed-forward layers instead (e.g. *.intermediate.dense)")
            if isinstance(module, nn.Conv2d) and module.groups > 1:
                out.append("a depthwise/grouped conv follows its input channels; prune the conv that feeds it")
            if int(_out_units(module) * config.amount) < 1:
                out.append(f"amount {config.amount} removes no channel of {_out_units(module)}")
        return out

    def check_model(self, model, targets, example_inputs, graph_of=None) -> list[str]:
        structured = [n for n, c in targets.items() if c.mode == "structured"]
        if not structured:
            return []
        try:
            graph = (graph_of or _dependency_graph)(model, example_inputs)
        except StudioError as exc:
            return [str(exc)]
        problems = []
        for name in structured:
            node = graph.module2node.get(model.get_submodule(name))
            if node is None:
                problems.append(f"layer {name}: prune: the layer is not used in the forward pass")
            elif not node.outputs:
                problems.append(f"layer {name}: prune: structured pruning would remove outputs of the model's "
                                "final layer (its classes or features); exclude it, e.g. with 'prune: null'")
        return problems

    def check_model_cached(self, model, targets, example_inputs) -> list[str]:
        return self.check_model(model, targets, example_inputs, _projection_graph)  # the projection's trace

    def project(self, module: nn.Module, config: PruneConfig, estimate: Estimate) -> Estimate:
        # Unstructured and 2:4 prune each part of a layer an earlier technique split (factors).
        weights = [o * f for o, f, _ in estimate.parts] or [module.weight.numel()]
        if config.mode == "2:4":
            return dataclasses.replace(estimate, nonzero=estimate.nonzero - sum(w // 2 for w in weights))
        if config.mode == "unstructured":  # torch.nn.utils.prune rounds the count to the nearest
            return dataclasses.replace(estimate, nonzero=estimate.nonzero - sum(round(w * config.amount)
                                                                                for w in weights))
        # Structured: this layer's own share; the following layer also shrinks (not projected).
        keep = 1 - int(_out_units(module) * config.amount) / _out_units(module)
        removed = int(_weight_and_bias(module) * (1 - keep))
        size = module.weight.element_size()
        return Estimate(estimate.params - removed, estimate.bytes - removed * size,
                        int(estimate.flops * keep), estimate.nonzero - removed)

    def conflicts(self, config: PruneConfig, other: Technique, other_config: TechniqueConfig) -> str | None:
        if config.mode == "structured" and other.restructures:
            return f"structured pruning and {other.noun} on one layer conflict; choose one."
        return None

    def changes_other_layers(self, config: PruneConfig) -> bool:
        return config.mode == "structured"  # the next layer's inputs, BatchNorm, residual partners

    def coupled_effects(self, model, example_inputs, targets) -> dict[str, float]:
        return coupled_kept_fractions(model, example_inputs, targets)

    def coupled_flops(self, model, example_inputs, targets) -> dict[str, int]:
        try:
            return coupled_column_flops(model, example_inputs, targets)
        except StudioError:
            return {}  # untraceable: as coupled_effects

    def sweep_setting(self, raw: str, text: str) -> tuple[str, dict[str, Any]]:
        """0.5 / 50% / prune 50% / struct 30% / 2:4."""
        if raw == "2:4":
            return "2:4", {"mode": "2:4"}
        structured = raw.startswith(("struct", "s"))
        amount = parse_fraction(re.sub(r"^(structured|struct|s|unstructured|prune)\s*", "", raw), "Pruning amount")
        if amount >= 1:
            raise StudioError(f"Pruning amount {text!r} must be below 100%.")
        label = f"{'struct' if structured else 'prune'} {percent(amount)}"
        return label, {"mode": "structured" if structured else "unstructured", "amount": amount}

    def fine_tune_masks(self, model: nn.Module, change: LayerChange) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Zeros made by unstructured/2:4 pruning must stay zero while fine-tuning; structured
        pruning removed its channels, so nothing is masked."""
        if change.detail.startswith("structured"):
            return []
        weight = model.get_submodule(change.name).weight
        return [(weight, (weight != 0).to(weight.dtype))]

    def apply_(self, model: nn.Module, targets: dict[str, PruneConfig],
               context: ApplyContext) -> Iterator[LayerChange]:
        structured = {n: c for n, c in targets.items() if c.mode == "structured"}
        graph = _dependency_graph(model, context.example_inputs) if structured else None
        for name, config in targets.items():
            context.check_cancel()
            module = model.get_submodule(name)
            before = _weight_and_bias(module)
            if config.mode == "structured":
                detail = _prune_structured(graph, module, config)
            elif config.mode == "2:4":
                detail = _prune_2_4(module)
            else:
                detail = _prune_unstructured(module, config)
            yield LayerChange(name, self.name, detail, before, _weight_and_bias(module))


def _prune_unstructured(module: nn.Module, config: PruneConfig) -> str:
    from torch.nn.utils import prune

    # For single weights L1 and L2 magnitude give the same ranking, so `importance` does not matter here.
    prune.l1_unstructured(module, "weight", amount=config.amount)
    prune.remove(module, "weight")  # make the zeros permanent, drop the mask re-parametrization
    zeros = int((module.weight == 0).sum())
    return f"unstructured: {zeros / module.weight.numel():.1%} of weights zero"


def _prune_2_4(module: nn.Module) -> str:
    """Keep the 2 largest-magnitude weights in every group of 4 consecutive inputs."""
    with torch.no_grad():
        weight = module.weight
        groups = weight.reshape(weight.shape[0], -1, 4)
        keep = groups.abs().topk(2, dim=-1).indices
        mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, keep, True)
        weight.copy_((groups * mask).reshape_as(weight))
    return "2:4 semi-structured: 50% of weights zero"


def coupled_kept_fractions(model: nn.Module, example_inputs: tuple[tuple[Any, ...], dict[str, Any]],
                           targets: dict[str, PruneConfig]) -> dict[str, float]:
    """{layer: fraction of its parameters kept} for the layers that structured pruning of
    `targets` shrinks as a consequence (the BatchNorm after a conv, the next layer's inputs,
    residual partners), read from Torch-Pruning's dependency graph without pruning anything.
    A target's own output channels are left out (its own estimate covers them); its inputs,
    shrunk by another target, are not."""
    return _coupled_walk(model, example_inputs, targets)[0]


def coupled_column_flops(model: nn.Module, example_inputs: tuple[tuple[Any, ...], dict[str, Any]],
                         targets: dict[str, PruneConfig]) -> dict[str, int]:
    """{layer: FLOPs the parameter share over-counts} for a Linear or Conv2d that structured
    pruning of `targets` only takes input columns from (e.g. an FFN's output projection): it
    keeps its whole bias, so its work shrinks by its weight's kept share, below the share of its
    parameters (bias included) that the projection scales its FLOPs by."""
    kept, columns = _coupled_walk(model, example_inputs, targets)
    flops = _matmul_flops(model, example_inputs, list(columns))
    return {n: int(flops[n] * kept[n]) - round(flops[n] * share) for n, share in columns.items() if n in flops}


def _coupled_walk(model: nn.Module, example_inputs: tuple[tuple[Any, ...], dict[str, Any]],
                  targets: dict[str, PruneConfig]) -> tuple[dict[str, float], dict[str, float]]:
    """One walk of the structured targets' dependency groups: (the coupled layers' kept parameter
    fractions, the kept weight share of those among them that lose input columns only). The
    projection asks for both in turn (coupled_effects, then coupled_flops): the last walk is kept."""
    structured = {n: c for n, c in targets.items() if c.mode == "structured"}
    if not structured:
        return {}, {}
    try:
        graph = _projection_graph(model, example_inputs)
    except StudioError:
        return {}, {}  # untraceable: the plan check reports it; the projection stays per layer
    key = tuple(structured.items())
    if _walk_cache and _walk_cache[0][0] is graph and _walk_cache[0][1] == key:
        return dict(_walk_cache[0][2]), dict(_walk_cache[0][3])
    names = {module: name for name, module in model.named_modules()}
    kept: dict[str, float] = {}
    columns: dict[str, float] = {}
    rows: set[str] = set()
    for name, config in structured.items():
        module = model.get_submodule(name)
        if graph.module2node.get(module) is None or not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        prune_fn, _, count = _out_channel_pruning(module, config)
        if count <= 0:
            continue
        for item in graph.get_pruning_group(module, prune_fn, idxs=list(range(count))):
            layer = item.dep.target.module
            layer_name = names.get(layer) if isinstance(layer, nn.Module) else None
            if layer_name is None:
                continue
            handler = getattr(item.dep.handler, "__name__", "")
            if "in_channels" not in handler:
                rows.add(layer_name)
            elif isinstance(layer, (nn.Linear, nn.Conv2d)) and layer.bias is not None and getattr(layer, "groups", 1) == 1:
                columns[layer_name] = columns.get(layer_name, 1.0) * (1 - len(item.idxs) / layer.weight.shape[1])
            dim = 0 if "out_channels" in handler else 1 if "in_channels" in handler else None
            params = list(layer.parameters(recurse=False))
            if dim is None or not params or (layer_name in structured and dim == 0):
                continue  # a target's own outputs are its own estimate
            k = len(item.idxs)
            removed = sum(p.numel() * k // p.shape[dim] for p in params if p.dim() > dim and p.shape[dim] >= k)
            kept[layer_name] = kept.get(layer_name, 1.0) * (1 - removed / sum(p.numel() for p in params))
    # a layer that also loses outputs shrinks by its parameter share (the two agree)
    columns = {n: share for n, share in columns.items() if n in kept and n not in rows}
    _walk_cache[:] = [(graph, key, kept, columns)]
    return dict(kept), dict(columns)


def _matmul_flops(model: nn.Module, example_inputs: tuple[tuple[Any, ...], dict[str, Any]],
                  names: list[str]) -> dict[str, int]:
    """Each named Linear's / Conv2d's FLOPs on the example inputs as PyTorch's FLOP counter counts
    them (2 per multiply-add, bias adds not counted): one no-grad eval-mode pass (modes restored)."""
    flops: dict[str, int] = {}
    if not names:
        return flops

    def hook(module, args, output, name):
        if isinstance(module, nn.Linear):
            work = 2 * args[0].numel() * module.out_features
        else:
            work = 2 * output.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        flops[name] = flops.get(name, 0) + work
    handles = [model.get_submodule(n).register_forward_hook(lambda m, a, o, n=n: hook(m, a, o, n)) for n in names]
    if not hooked_forward(model, example_inputs, handles):
        flops.clear()  # the projection keeps the parameter share rather than failing
    return flops


_graph_cache: list[tuple[nn.Module, Any]] = []  # [(model, graph or the StudioError of tracing it)]
_walk_cache: list[tuple[Any, tuple[Any, ...], dict[str, float], dict[str, float]]] = []  # [(graph, targets, walk)]


def _projection_graph(model: nn.Module, example_inputs: tuple[tuple[Any, ...], dict[str, Any]]):
    """The window projects on every plan edit; the graph (0.1 s for MiniLM) is built once per
    model, and a model that cannot be traced is not traced again. One entry, holding the model
    itself (an id alone could be reused by a later model); a new model replaces it. The graph
    only reads the model."""
    if not _graph_cache or _graph_cache[0][0] is not model:
        try:
            entry: Any = _dependency_graph(model, example_inputs)
        except StudioError as exc:
            entry = exc
        _graph_cache[:] = [(model, entry)]
    entry = _graph_cache[0][1]
    if isinstance(entry, StudioError):
        raise entry
    return entry


def _dependency_graph(model: nn.Module, example_inputs: tuple[tuple[Any, ...], dict[str, Any]]):
    import torch_pruning as tp

    args, kwargs = example_inputs
    example = kwargs if kwargs else (args[0] if len(args) == 1 else list(args))
    try:
        return tp.DependencyGraph().build_dependency(model, example_inputs=example, verbose=False,
                                                     output_transform=_traced_outputs)
    except Exception as exc:
        raise StudioError(f"Torch-Pruning could not trace this model for structured pruning "
                          f"({type(exc).__name__}: {exc}); use unstructured or 2:4 pruning instead.") from exc


def _traced_outputs(output: Any) -> list[torch.Tensor]:
    """The output tensors Torch-Pruning walks back from. A causal LM also returns its key/value
    cache (tuples, or a Cache object), which Torch-Pruning's own flattening cannot read."""
    if isinstance(output, torch.Tensor):
        return [output] if output.grad_fn is not None else []
    if isinstance(output, dict):  # transformers' ModelOutput is a dict
        output = list(output.values())
    if isinstance(output, (list, tuple)):
        return [tensor for item in output for tensor in _traced_outputs(item)]
    return []


def _out_channel_pruning(module: nn.Module, config: PruneConfig) -> tuple[Any, int, int]:
    """(Torch-Pruning's out-channel function, outputs, how many go): at least one output stays."""
    import torch_pruning as tp

    total = _out_units(module)
    prune_fn = tp.prune_conv_out_channels if isinstance(module, nn.Conv2d) else tp.prune_linear_out_channels
    return prune_fn, total, min(int(total * config.amount), total - 1)


def _prune_structured(graph, module: nn.Module, config: PruneConfig) -> str:
    import torch_pruning as tp

    node = graph.module2node.get(module)
    if node is None:
        raise StudioError("structured pruning: the layer was not used in the forward pass.")
    if not node.outputs:
        raise StudioError("structured pruning would remove outputs of the model's final layer "
                          "(its classes or features); exclude that layer.")
    prune_fn, total, count = _out_channel_pruning(module, config)
    group = graph.get_pruning_group(module, prune_fn, idxs=list(range(total)))
    scores = tp.importance.GroupMagnitudeImportance(p=1 if config.importance == "l1" else 2)(group)
    idxs = scores.argsort()[:count].tolist()
    group = graph.get_pruning_group(module, prune_fn, idxs=idxs)
    if not graph.check_pruning_group(group):
        raise StudioError("structured pruning would leave a coupled layer with no channels; lower the amount.")
    coupled = {item.dep.target.module for item in group} - {module}
    coupled = {m for m in coupled if isinstance(m, nn.Module) and any(True for _ in m.parameters(recurse=False))}
    group.prune()
    unit = "channels" if isinstance(module, nn.Conv2d) else "neurons"
    return f"structured: removed {count} of {total} {unit} ({config.importance}); {len(coupled)} coupled layer(s) adjusted"
