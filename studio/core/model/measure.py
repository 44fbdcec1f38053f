"""Measured figures of a model (params, bytes at real bit widths, zlib-compressed bytes,
FLOPs) and the output fidelity of a compressed model against its original."""

from __future__ import annotations

import inspect
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
    scales (modules providing `storage_arrays()`), every other tensor as is, ties once.

    A weight tied between two quantized layers on the same grid (an LM head and its embedding,
    both int8 per row) is one table: the second layer adds only its own extras (`storage_key()`
    says which table a layer stores). A float layer sharing a quantized layer's weight still
    needs the float tensor, so it is counted too. As `quant_modules.storage_bytes`, but buffers
    that are not saved (position ids, rotary tables) count here as they always have."""
    counted: set[int] = set()
    tables: set[object] = set()
    for module in model.modules():
        arrays = getattr(module, "storage_arrays", None)
        if callable(arrays):
            key_of = getattr(module, "storage_key", None)
            key = key_of() if callable(key_of) else None
            if key is None:
                yield from arrays()
            else:
                yield from arrays(weight=key not in tables)
                tables.add(key)
            continue
        for tensor in (*module.parameters(recurse=False), *module.buffers(recurse=False)):
            if id(tensor) not in counted:
                counted.add(id(tensor))
                yield _as_array(tensor)


def _as_array(tensor: torch.Tensor) -> np.ndarray:
    """A numpy view of the tensor's bytes (no copy for a contiguous CPU tensor)."""
    tensor = tensor.detach().cpu().contiguous()
    return tensor.view(torch.uint8).numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()


def stored_bytes(module: nn.Module) -> int:
    """Bytes a file would hold for this module's subtree at its real bit widths."""
    return sum(array.nbytes for array in _stored_arrays(module))


ZLIB_CHUNK = 4 << 20  # bytes handed to zlib at a time: no whole-tensor copy (an LLM's embedding is 100+ MiB)


def zlib_size(array: np.ndarray, level: int = 6) -> int:
    """len(zlib.compress(array.tobytes(), level)), streamed in chunks over a view of the array's
    memory, so neither the raw bytes nor the compressed output is ever held whole."""
    view = np.ascontiguousarray(array).reshape(-1).view(np.uint8)  # a view: no copy
    stream = zlib.compressobj(level)
    size = 0
    for start in range(0, len(view), ZLIB_CHUNK):
        size += len(stream.compress(view[start:start + ZLIB_CHUNK]))
    return size + len(stream.flush())


def figures(model: nn.Module, spec: InputSpec, tree: ModelTree | None = None) -> Figures:
    """`bytes` counts real bit widths (int8/int4 codes + scales); `compressed_bytes` is what
    zlib makes of them, which is where unstructured zeros pay off."""
    tree = tree or inspect_model(model, spec)
    dense = compressed = 0
    for array in _stored_arrays(model):
        dense += array.nbytes
        compressed += zlib_size(array)
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
    batches = list(batches)
    return fidelity_to((primary_output(original(*args, **_no_cache(original, kwargs))) for args, kwargs in batches),
                       compressed, batches)


def _no_cache(model: nn.Module, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` plus `use_cache=False` for a forward that takes it (a Hugging Face causal LM):
    the key/value cache it would otherwise build is never read here (12 MiB on a 135 M LM for
    two windows of 128 tokens, held until the output goes); the logits are the same."""
    if "use_cache" in kwargs:
        return kwargs
    try:
        takes = "use_cache" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        takes = False
    return {**kwargs, "use_cache": False} if takes else kwargs


def reference_outputs(original: nn.Module, batches: Iterable[Batch]) -> list[torch.Tensor]:
    """The original's outputs on `batches`, kept so a model compressed in place (the original is
    gone by then) can still be compared: `fidelity_to(reference_outputs(m, b), compressed, b)`."""
    with torch.no_grad():
        return [primary_output(original(*args, **_no_cache(original, kwargs))).detach() for args, kwargs in batches]


FIDELITY_CHUNK = 1 << 20  # elements compared at a time: a causal LM's logits are 48 MiB per two windows


def fidelity_to(references: Iterable[torch.Tensor], compressed: nn.Module, batches: Iterable[Batch]) -> Fidelity:
    """`fidelity` against the original's outputs, given one per batch (computed lazily or kept).
    The sums run over slices of the flattened outputs: no full-size difference or product is
    ever held next to the two outputs (on an LLM's logits those were ~4 more copies)."""
    max_abs, dot, norm_a, norm_b, agree, count, classifier = 0.0, 0.0, 0.0, 0.0, 0, 0, True
    with torch.no_grad():
        for reference, (args, kwargs) in zip(references, batches):
            a = reference.detach()
            b = primary_output(compressed(*args, **_no_cache(compressed, kwargs))).detach()
            if a.shape != b.shape:
                raise ValueError(f"output shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
            classifier = classifier and a.dim() == 2
            if a.dim() >= 2:
                agree += int((a.argmax(-1) == b.argmax(-1).to(a.device)).sum())
                count += a[..., 0].numel()
            flat_a, flat_b = a.reshape(-1), b.reshape(-1)
            for start in range(0, flat_a.numel(), FIDELITY_CHUNK):
                x = flat_a[start:start + FIDELITY_CHUNK].float()
                y = flat_b[start:start + FIDELITY_CHUNK].float().to(x.device)  # (a kept reference may be on the CPU)
                max_abs = max(max_abs, float((x - y).abs().max()))
                dot += float((x * y).sum())
                norm_a += float((x * x).sum())
                norm_b += float((y * y).sum())
            del a, b, flat_a, flat_b
    cosine = dot / max((norm_a * norm_b) ** 0.5, 1e-30)
    return Fidelity(max_abs=max_abs, cosine=cosine,
                    top1_agreement=(agree / count) if (classifier and count) else None, samples=count)
