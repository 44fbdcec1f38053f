"""Build a `ModelTree` from a live module: parameter/byte accounting with tied weights
counted once, FLOPs from `torch.utils.flop_counter` attributed to the module hierarchy,
and input/output shapes from one forward pass on the input spec."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from studio.core.base.errors import StudioError
from studio.core.model.input_spec import InputSpec
from studio.core.model.meta_forward import flop_counter, is_meta_model, meta_copy, meta_inputs
from studio.core.model.model_tree import LayerNode, ModelTree


@dataclass
class _TensorStats:
    numel: int
    nbytes: int
    dtype: str
    zeros: int | None  # None: unknown (a meta tensor has no values to count)
    trainable: bool
    is_param: bool


def describe_shapes(value: Any, limit: int = 3) -> str:
    """'1x10' for a tensor; '(1x128x384, 1x384)' for tuples and model outputs."""
    shapes = []
    _collect_shapes(value, shapes, limit + 1)
    if not shapes:
        return ""
    text = ", ".join(shapes[:limit]) + (", …" if len(shapes) > limit else "")
    return text if len(shapes) == 1 else f"({text})"


def _collect_shapes(value: Any, out: list[str], limit: int) -> None:
    if len(out) >= limit:
        return
    if isinstance(value, torch.Tensor):
        out.append("x".join(map(str, value.shape)) if value.dim() else "scalar")
    elif isinstance(value, dict):
        for item in value.values():
            _collect_shapes(item, out, limit)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect_shapes(item, out, limit)


_NUMPY_DTYPES = frozenset((torch.float32, torch.float64, torch.float16, torch.int8, torch.uint8, torch.int16,
                           torch.int32, torch.int64, torch.bool))


def count_zeros(tensor: torch.Tensor) -> int:
    """Elements equal to 0 (-0.0 too, NaN not), exactly as `torch.count_nonzero` counts. numpy
    counts a CPU tensor in one thread through a zero-copy view: torch's count wakes its thread
    pool once per tensor, which on a busy 2-core machine cost ~6 ms a call whatever the size
    (a 135 M Llama's 272 tensors: 1.5 CPU-s against 0.1; benchmarks/bench_inspect_zeros.py)."""
    data = tensor.detach()
    if data.device.type == "cpu" and data.dtype in _NUMPY_DTYPES and type(data) is torch.Tensor:
        try:
            return data.numel() - int(np.count_nonzero(data.numpy()))
        except (RuntimeError, TypeError):
            pass  # a tensor numpy cannot view (e.g. a conjugate view): torch counts it
    return data.numel() - int(torch.count_nonzero(data))


def _tensor_stats(tensor: torch.Tensor, is_param: bool) -> _TensorStats:
    """Zeros are counted for parameters only (the figures count nothing else); a weightless
    (meta) tensor's are unknown, never 0."""
    numel = tensor.numel()
    zeros: int | None = 0
    if tensor.is_meta:
        zeros = None
    elif is_param and numel:
        zeros = count_zeros(tensor)
    return _TensorStats(
        numel=numel,
        nbytes=numel * tensor.element_size(),
        dtype=str(tensor.dtype).removeprefix("torch."),
        zeros=zeros,
        trainable=bool(is_param and tensor.requires_grad),
        is_param=is_param,
    )


def _own_tensors(module: nn.Module) -> Iterable[tuple[torch.Tensor, bool]]:
    for _, param in module.named_parameters(recurse=False):
        yield param, True
    skip = getattr(module, "_non_persistent_buffers_set", set())
    for name, buf in module.named_buffers(recurse=False):
        if name not in skip:
            yield buf, False


def inspect_model(module: nn.Module, input_spec: InputSpec | None, notes: Iterable[str] = ()) -> ModelTree:
    """Inspect `module` (never modified); `input_spec=None` skips the forward pass."""
    nodes: dict[str, LayerNode] = {}
    modules: list[tuple[str, nn.Module]] = list(module.named_modules(remove_duplicate=False))
    stats: dict[int, _TensorStats] = {}
    owners: dict[int, list[str]] = defaultdict(list)
    own_ids: dict[str, list[int]] = {}
    stored: dict[str, dict[str, int]] = {}  # layers that store their weights otherwise (int8 codes + scales)
    for name, mod in modules:
        parent = nodes.get(name.rsplit(".", 1)[0] if "." in name else "") if name else None
        node = LayerNode(name=name, type=type(mod).__name__, depth=name.count(".") + 1 if name else 0)
        node.parent = parent
        if parent is not None:
            parent.children.append(node)
        nodes[name] = node
        ids = []
        for tensor, is_param in _own_tensors(mod):
            key = id(tensor)
            if key not in stats:
                stats[key] = _tensor_stats(tensor, is_param)
            if key not in ids:
                ids.append(key)
                owners[key].append(name)
        own_ids[name] = ids
        node.params = sum(stats[k].numel for k in ids if stats[k].is_param)
        stored_as = _stored_bytes_by_dtype(mod)
        if stored_as is not None:
            stored[name] = stored_as
    shared_ids = {k for k, names in owners.items() if len(names) > 1}
    for key in shared_ids:
        for name in owners[key]:
            nodes[name].shared = True
    _aggregate(nodes, modules, own_ids, stats, shared_ids, stored)
    root = nodes[""]
    for node in nodes.values():
        node.share = node.total_params / root.total_params if root.total_params else 0.0
    all_notes = list(notes)
    if input_spec is not None:
        all_notes += _forward_pass(module, input_spec, nodes)
    return ModelTree(root=root, input_spec=str(input_spec or ""), notes=tuple(all_notes))


def _stored_bytes_by_dtype(module: nn.Module) -> dict[str, int] | None:
    """Bytes of a layer that says how a file holds it (`storage_arrays()`, e.g. the studio's
    quantized layers: integer codes and scales), so the tree shows real sizes, not the float
    copy the simulation computes with."""
    arrays = getattr(module, "storage_arrays", None)
    if not callable(arrays) or any(t.is_meta for t, _ in _own_tensors(module)):
        return None
    out: dict[str, int] = defaultdict(int)
    for array in arrays():
        out[str(array.dtype)] += int(array.nbytes)
    return dict(out)


def _aggregate(nodes, modules, own_ids, stats, shared_ids, stored) -> None:
    """Post-order sums; subtrees holding a tied tensor twice count it once."""
    subtree_shared: dict[str, set[int]] = {}
    for name, _ in reversed(modules):
        node = nodes[name]
        ids = own_ids[name]
        seen = {k for k in ids if k in shared_ids}
        totals = _Totals()
        for key in ids:
            totals.add(stats[key], count_bytes=name not in stored)
        for dtype, nbytes in stored.get(name, {}).items():
            totals.nbytes += nbytes
            totals.by_dtype[dtype] += nbytes
        for child in node.children:
            totals.merge(child)
            dup = subtree_shared[child.name] & seen
            for key in dup:  # already counted once below this node
                totals.add(stats[key], sign=-1)
            seen |= subtree_shared[child.name]
        subtree_shared[name] = seen
        totals.store(node)


class _Totals:
    """Sums of one subtree; `zeros` is None (unknown) once any parameter in it is."""

    def __init__(self) -> None:
        self.params = self.trainable = self.nbytes = 0
        self.zeros: int | None = 0
        self.by_dtype: dict[str, int] = defaultdict(int)

    def add(self, s: _TensorStats, sign: int = 1, count_bytes: bool = True) -> None:
        if count_bytes:
            self.nbytes += sign * s.nbytes
            self.by_dtype[s.dtype] += sign * s.nbytes
        if s.is_param:
            self.params += sign * s.numel
            self.trainable += sign * (s.numel if s.trainable else 0)
            self.zeros = None if self.zeros is None or s.zeros is None else self.zeros + sign * s.zeros

    def merge(self, child: LayerNode) -> None:
        self.params += child.total_params
        self.trainable += child.trainable_params
        self.nbytes += child.bytes
        self.zeros = None if self.zeros is None or child.zero_params is None else self.zeros + child.zero_params
        for dtype, n in child.bytes_by_dtype.items():
            self.by_dtype[dtype] += n

    def store(self, node: LayerNode) -> None:
        node.total_params = self.params
        node.trainable_params = self.trainable
        node.bytes = self.nbytes
        node.bytes_by_dtype = {k: v for k, v in self.by_dtype.items() if v}
        node.zero_params = self.zeros
        node.sparsity = None if self.zeros is None else self.zeros / self.params if self.params else 0.0


def _forward_pass(module: nn.Module, spec: InputSpec, nodes: dict[str, LayerNode]) -> list[str]:
    """One no-grad forward: shapes through hooks, FLOPs through FlopCounterMode. It runs on a
    meta copy first (the same ops on the same shapes, nothing computed: exact and fast); a
    forward that needs values (`.item()`, data-dependent branches) falls back to the real one.
    A model built without weights has only the meta forward."""
    notes: list[str] = []
    scripted = isinstance(module, torch.jit.ScriptModule)
    args, kwargs = spec.make_inputs()
    output = counter = None
    if not scripted:
        try:
            target = meta_copy(module)
            meta_args, meta_kwargs = meta_inputs(module, args, kwargs)
            counter, output = _hooked_forward(target, meta_args, meta_kwargs, nodes, spec)
        except Exception as exc:
            if is_meta_model(module):
                cause = exc.args[0] if isinstance(exc, StudioError) and exc.args else f"{type(exc).__name__}: {exc}"
                raise StudioError(f"This model has no weights (built from its config on the meta device) and its "
                                  f"forward pass cannot run so: {str(cause)[:300]} — open the folder with its weights "
                                  "to compress, run or export it.") from exc
            counter = None
            for node in nodes.values():
                node.input_shape = node.output_shape = ""
    if counter is None:
        counter, output = _hooked_forward(module, args, kwargs, nodes, spec, hooks=not scripted)
    root = nodes[""]
    root.input_shape = describe_shapes(args) or describe_shapes(kwargs) or root.input_shape  # the mask too
    root.output_shape = root.output_shape or describe_shapes(output)
    _attribute_flops(counter.get_flop_counts(), type(module).__name__, nodes)
    if scripted:
        notes.append("TorchScript: FLOPs and shapes are known for the whole model only; "
                     "per-layer figures need the eager model.")
    return notes


def _hooked_forward(module: nn.Module, args, kwargs, nodes: dict[str, LayerNode], spec: InputSpec,
                    hooks: bool = True):
    names_of: dict[int, list[str]] = defaultdict(list)
    for name, mod in module.named_modules(remove_duplicate=False):
        names_of[id(mod)].append(name)
    handles = []
    running: list[nn.Module] = []  # modules entered but not left: on an error, where it happened

    def pre_hook(mod, args, kwargs):
        running.append(mod)
        text = describe_shapes(args) or describe_shapes(kwargs)
        for name in names_of[id(mod)]:
            nodes[name].input_shape = nodes[name].input_shape or text

    def post_hook(mod, args, output):
        if running and running[-1] is mod:
            running.pop()
        text = describe_shapes(output)
        for name in names_of[id(mod)]:
            nodes[name].output_shape = nodes[name].output_shape or text

    if hooks:
        for mod_id, names in names_of.items():
            mod = module.get_submodule(names[0])
            handles.append(mod.register_forward_pre_hook(pre_hook, with_kwargs=True))
            handles.append(mod.register_forward_hook(post_hook))
    counter = flop_counter()
    try:
        with torch.no_grad(), counter:
            output = module(*args, **kwargs)
    except Exception as exc:  # the user's forward can raise anything
        raise _forward_error(exc, spec, [(names_of[id(m)][0], m) for m in running if m is not module]) from exc
    finally:
        for handle in handles:
            handle.remove()
    return counter, output


def _forward_error(exc: Exception, spec: InputSpec, running: list[tuple[str, nn.Module]]) -> StudioError:
    """Name the layer that failed; when it is (inside) a layer a technique replaced, the
    compression broke the model, not the input spec."""
    cause = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    replaced = [(n, m) for n, m in running if type(m).__module__.startswith("studio.core.techniques")]
    if replaced:
        name, layer = replaced[0]
        return StudioError(f"The compressed model's forward pass fails in layer {name} ({type(layer).__name__}, "
                           f"made by the compression): {cause} — the compression broke this layer; exclude it "
                           "from the plan (e.g. quantize: null) and report the model.")
    where = f" in layer {running[-1][0]} ({type(running[-1][1]).__name__})" if running else ""
    return StudioError(f"The model's forward pass failed on the input spec '{spec}'{where}: {cause} — set the "
                       "input spec that matches the model (CLI: --input-shape/--input-dtype/--input; "
                       "window: Model ▸ Input spec…).")


LAYER_KINDS = (("Conv2d", nn.Conv2d), ("Conv1d", nn.Conv1d), ("Linear", nn.Linear))


def layer_kind(module: nn.Module) -> str | None:
    """What a layer is by behaviour, not class name: subclasses (e.g. a TF-"same" padded
    Conv2d) and the studio's replacement layers (a class attribute `layer_kind`) count as the
    op they compute."""
    declared = getattr(type(module), "layer_kind", None)
    if isinstance(declared, str):
        return declared
    return next((kind for kind, cls in LAYER_KINDS if isinstance(module, cls)), None)


def flops_by_kind(module: nn.Module, tree: ModelTree) -> dict[str, int]:
    """FLOPs per layer kind (Conv2d, Linear, …) over the model's layers."""
    out: dict[str, int] = {}
    nodes = {n.name: n for n in tree.nodes()}
    for name, mod in module.named_modules():
        kind = layer_kind(mod)
        if kind and name in nodes:
            out[kind] = out.get(kind, 0) + nodes[name].flops
    return out


def _attribute_flops(counts: dict[str, dict[Any, int]], root_label: str, nodes: dict[str, LayerNode]) -> None:
    prefix = root_label + "."
    for label, per_op in counts.items():
        total = int(sum(per_op.values()))
        if label == root_label:
            name = ""
        elif label.startswith(prefix):
            name = label[len(prefix):]
        else:
            continue
        if name in nodes:
            nodes[name].flops = total
    if not nodes[""].flops and "Global" in counts:
        nodes[""].flops = int(sum(counts["Global"].values()))
    # Containers that are never called (ModuleList, ModuleDict) show their children's sum.
    for node in reversed(list(nodes[""].walk())):
        if not node.output_shape and node.children and not node.flops:
            node.flops = sum(child.flops for child in node.children)
