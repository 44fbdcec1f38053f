"""FLOPs and shapes from a forward pass on the meta device: the same ops with the same
shapes as a real forward (so the counts are exact), without computing anything.

A 135 M causal LM costs seconds of CPU for a real forward at 128 tokens; on meta tensors it
is the Python overhead only. Models whose forward looks at values (`.item()`, data-dependent
control flow) cannot run on meta: the caller then falls back to the real forward.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn


def flop_counter():
    """A FlopCounterMode that also counts CPU attention: torch registers the sdpa formula for
    the CUDA kernels only, so a CPU forward would count no attention FLOPs while a meta one
    (which decomposes sdpa into two bmm) does. With this mapping both agree."""
    from torch.utils.flop_counter import FlopCounterMode

    cpu_op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    return FlopCounterMode(display=False, custom_mapping={cpu_op: _sdpa_flops} if cpu_op is not None else {})


def _sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """torch's own formula for its CUDA attention kernels (QK^T and AV as two bmm)."""
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query_shape, key_shape, value_shape)


def is_meta_model(module: nn.Module) -> bool:
    """True when the module's weights live on the meta device (built from a config only)."""
    tensor = next(iter(module.parameters()), None)
    return tensor is not None and tensor.is_meta


def meta_inputs(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]):
    """The example inputs as meta tensors. An all-ones `attention_mask` of a Hugging Face model
    is dropped: there it means the same as no mask, and the mask code checks its values
    (`.all()`), which meta tensors cannot answer."""
    kwargs = dict(kwargs)
    mask = kwargs.get("attention_mask")
    if isinstance(mask, torch.Tensor) and _optional_hf_mask(module) and bool((mask == 1).all()):
        del kwargs["attention_mask"]
    to_meta = lambda v: v.to("meta") if isinstance(v, torch.Tensor) else v  # noqa: E731
    return tuple(to_meta(a) for a in args), {k: to_meta(v) for k, v in kwargs.items()}


def _optional_hf_mask(module: nn.Module) -> bool:
    if not type(module).__module__.startswith("transformers."):
        return False
    try:
        param = inspect.signature(module.forward).parameters.get("attention_mask")
    except (TypeError, ValueError):
        return False
    return param is not None and param.default is None


def meta_copy(module: nn.Module) -> nn.Module:
    """A structural copy whose parameters and buffers are meta tensors (ties and shared
    modules kept): the original is never touched, and nothing the size of a weight is
    allocated. (torch.func.functional_call would avoid the copy but leaves meta tensors behind
    in a module registered under two names.)"""
    if is_meta_model(module):
        return module
    import copy

    memo: dict[int, object] = {}
    for tensor in module.parameters():
        memo[id(tensor)] = nn.Parameter(torch.empty_like(tensor, device="meta"), requires_grad=tensor.requires_grad)
    for tensor in module.buffers():
        memo[id(tensor)] = torch.empty_like(tensor, device="meta")
    return copy.deepcopy(module, memo)
