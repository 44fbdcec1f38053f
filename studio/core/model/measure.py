"""Measured figures of a model (params, bytes at real bit widths, zlib-compressed bytes,
FLOPs) and the output fidelity of a compressed model against its original."""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np
import torch
from torch import nn

from studio.core.model.input_spec import InputSpec
from studio.core.model.inspection import inspect_model
from studio.core.model.model_tree import ModelTree

Batch = tuple[tuple[Any, ...], dict[str, Any]]


@dataclass(frozen=True)
class Figures:
    params: int
    nonzero_params: int
    bytes: int
    compressed_bytes: int
    flops: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Fidelity:
    max_abs: float
    cosine: float
    top1_agreement: float | None
    samples: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stored_arrays(model: nn.Module) -> Iterable[np.ndarray]:
    """What a file of this model would hold: quantized layers as their integer codes and
    scales (modules providing `storage_arrays()`), every other tensor as is, ties once."""
    seen: set[int] = set()
    for module in model.modules():
        arrays = getattr(module, "storage_arrays", None)
        if callable(arrays):
            for tensor in list(module.parameters(recurse=False)) + list(module.buffers(recurse=False)):
                seen.add(id(tensor))
            yield from arrays()
    for tensor in list(model.parameters()) + list(model.buffers()):
        if id(tensor) not in seen:
            seen.add(id(tensor))
            yield tensor.detach().cpu().contiguous().view(torch.uint8).numpy() if tensor.dtype == torch.bfloat16 \
                else tensor.detach().cpu().contiguous().numpy()


def stored_bytes(module: nn.Module) -> int:
    """Bytes a file would hold for this module's subtree at its real bit widths."""
    return sum(array.nbytes for array in _stored_arrays(module))


def figures(model: nn.Module, spec: InputSpec, tree: ModelTree | None = None) -> Figures:
    """`bytes` counts real bit widths (int8/int4 codes + scales); `compressed_bytes` is what
    zlib makes of them, which is where unstructured zeros pay off."""
    tree = tree or inspect_model(model, spec)
    dense = compressed = 0
    for array in _stored_arrays(model):
        raw = np.ascontiguousarray(array).tobytes()
        dense += len(raw)
        compressed += len(zlib.compress(raw, 6))
    return Figures(params=tree.total_params, nonzero_params=tree.total_params - tree.root.zero_params,
                   bytes=dense, compressed_bytes=compressed, flops=tree.total_flops)


def primary_output(output: Any) -> torch.Tensor:
    """The tensor users compare: logits if present, else the first tensor found."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):
        for key in ("logits", "last_hidden_state"):
            if isinstance(output.get(key), torch.Tensor):
                return output[key]
        values = list(output.values())
    elif isinstance(output, (list, tuple)):
        values = list(output)
    else:
        raise TypeError(f"model output of type {type(output).__name__} holds no tensor")
    for value in values:
        try:
            return primary_output(value)
        except TypeError:
            continue
    raise TypeError("model output holds no tensor")


def fidelity(original: nn.Module, compressed: nn.Module, batches: Iterable[Batch]) -> Fidelity:
    """Max abs diff, cosine of flattened outputs, and top-1 agreement for 2-D (classifier) outputs."""
    max_abs, dot, norm_a, norm_b, agree, count, classifier = 0.0, 0.0, 0.0, 0.0, 0, 0, True
    with torch.no_grad():
        for args, kwargs in batches:
            a = primary_output(original(*args, **kwargs)).float()
            b = primary_output(compressed(*args, **kwargs)).float()
            if a.shape != b.shape:
                raise ValueError(f"output shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
            max_abs = max(max_abs, float((a - b).abs().max()))
            dot += float((a * b).sum())
            norm_a += float((a * a).sum())
            norm_b += float((b * b).sum())
            classifier = classifier and a.dim() == 2
            if a.dim() >= 2:
                agree += int((a.argmax(-1) == b.argmax(-1)).sum())
                count += a[..., 0].numel()
    cosine = dot / max((norm_a * norm_b) ** 0.5, 1e-30)
    return Fidelity(max_abs=max_abs, cosine=cosine,
                    top1_agreement=(agree / count) if (classifier and count) else None, samples=count)
