"""Realized int4: Linear weights held as 4-bit group-wise codes and multiplied by torch's own
CPU int4 kernel (`aten._weight_int4pack_mm_for_cpu`, packed by `aten._convert_weight_to_int4pack_for_cpu`),
not a float copy quantized on every forward.

The grid is the studio's int4 (`quant_modules.int4_codes`: symmetric codes in [-8, 7], one fp32
scale per `group_size` consecutive inputs, a shorter last group padded as ONNX Runtime's
MatMulNBits pads K), so a packed layer computes what the simulated one does, to float rounding.
torch's kernel dequantizes `(q - 8) * scale + zero`: q = code + 8 and zero = 0 map it exactly.

What is held and what is saved (like torch's own quantized modules, the state_dict is the file
format, not the in-memory tensors):
  - `qweight`: the codes, one int8 per weight, a frozen Parameter, so parameter counts and the
    zero count stay those of the weight it replaces;
  - `scales` (fp32, out × groups) and `bias` (trainable: fine-tuning trains it, not the codes);
  - the kernel's operand, built lazily and never saved: its layout depends on the CPU's vector
    width, and N and K are padded to what the kernel accepts (N to 16, K to whole groups);
  - in the state_dict: `codes`, two codes per byte (low nibble first, q = code + 8), `scales`,
    `bias`: ceil(N·K/2) + 4·N·groups (+ bias) bytes, the size reports' formula.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from studio.core.techniques.quant_modules import INT4_MIN, QuantLinear, int4_codes, int4_groups

KERNEL_GROUPS = (32, 64, 128, 256)  # what the CPU kernel accepts
N_MULTIPLE = 16
# the kernel's vectorized path is bf16 (its float32 path is scalar: ~70x slower than a float Linear)
COMPUTE = torch.bfloat16
ROWS = 1024  # quantize and pack this many output rows at a time: float temporaries stay small
_ATEN = torch.ops.aten
_SHELLS = contextvars.ContextVar("int4_shells", default=False)
# (K, N) of the layer whose kernel call is running: the FLOP formula counts the logical product,
# not the padded operands the kernel is given
_LOGICAL = contextvars.ContextVar("int4_logical_shape", default=None)


def kernel_available() -> bool:
    return hasattr(_ATEN, "_weight_int4pack_mm_for_cpu") and hasattr(_ATEN, "_convert_weight_to_int4pack_for_cpu")


def why_simulated(module: nn.Module, group_size: int) -> str | None:
    """Why an int4 layer cannot be held packed (None: it can)."""
    if not kernel_available():
        return f"this torch ({torch.__version__}) has no CPU int4 kernel"
    if type(module) is not nn.Linear:
        return f"{type(module).__name__} is not a plain Linear"
    if group_size not in KERNEL_GROUPS:
        return f"torch's int4 kernel takes groups of {', '.join(map(str, KERNEL_GROUPS))}, not {group_size}"
    if not module.weight.is_floating_point():
        return "its weights are not floating point"
    return None


@contextlib.contextmanager
def packed_shells() -> Iterator[None]:
    """While open, `PackedInt4Linear.from_linear` builds empty layers of the right shapes (a
    compressed folder's saved codes are loaded into them) instead of quantizing the weights."""
    token = _SHELLS.set(True)
    try:
        yield
    finally:
        _SHELLS.reset(token)


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """int8 codes in [-8, 7] (any shape) → uint8, two per byte, low nibble first."""
    flat = codes.reshape(-1).view(torch.uint8) - INT4_MIN  # two's complement: (code + 8) mod 256, in 0..15
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    high = flat[1::2] << 4
    return high.bitwise_or_(flat[0::2])


def unpack_nibbles(packed: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    flat = torch.stack([packed & 0x0F, packed >> 4], dim=1).reshape(-1)[:shape[0] * shape[1]]
    return (flat.to(torch.int16) + INT4_MIN).to(torch.int8).reshape(shape)


class PackedInt4Linear(QuantLinear):
    """A QuantLinear whose int4 weight is realized: codes + scales, torch's CPU int4 kernel.

    A subclass so code that treats the studio's quantized layers alike (size accounting, export,
    which turns it back into a float layer for the runtime's own quantizer) keeps doing so; its
    `weight` is the dequantized weight, computed when asked, never stored."""

    def __init__(self, in_features: int, out_features: int, bias: nn.Parameter | None, config: Any,
                 device: torch.device | None = None) -> None:
        nn.Module.__init__(self)
        self.in_features, self.out_features = in_features, out_features
        self.config = config
        groups = int4_groups(in_features, config.group_size)
        self.qweight = nn.Parameter(torch.zeros(out_features, in_features, dtype=torch.int8, device=device),
                                    requires_grad=False)
        self.register_buffer("scales", torch.zeros(out_features, groups, dtype=torch.float32, device=device))
        self.register_parameter("bias", bias)
        # the kernel's operands (see the module docstring), built on first use
        self.register_buffer("_kernel_weight", torch.empty(0, dtype=torch.uint8, device=device), persistent=False)
        self.register_buffer("_scales_zeros", None, persistent=False)
        self._set_observer(None)
        object.__setattr__(self, "_float_module", None)

    @classmethod
    def from_linear(cls, module: nn.Linear, config: Any) -> PackedInt4Linear:
        """Quantize `module`'s weight (read only; the bias is copied, so the original never changes)."""
        bias = None if module.bias is None else nn.Parameter(module.bias.detach().clone(),
                                                             requires_grad=module.bias.requires_grad)
        layer = cls(module.in_features, module.out_features, bias, config, device=module.weight.device)
        if not _SHELLS.get():
            layer.set_weight_(module.weight)
        return layer

    def set_weight_(self, weight: torch.Tensor) -> None:
        """Quantize a float weight into this layer's codes and scales."""
        with torch.no_grad():
            for start in range(0, self.out_features, ROWS):
                codes, scales = int4_codes(weight[start:start + ROWS].detach(), self.config.group_size)
                self.qweight[start:start + ROWS] = codes.to(torch.int8)
                self.scales[start:start + ROWS] = scales
        self._invalidate()

    # --- the weight, as float ---------------------------------------------------------------
    def dequantized(self) -> torch.Tensor:
        scale = self.scales.repeat_interleave(self.config.group_size, dim=1)[:, :self.in_features]
        return self.qweight.float() * scale

    @property
    def weight(self) -> nn.Parameter:  # type: ignore[override]
        return nn.Parameter(self.dequantized(), requires_grad=False)

    def quantized_weight(self) -> torch.Tensor:
        return self.dequantized()

    # --- forward ------------------------------------------------------------------------------
    def _invalidate(self) -> None:
        self._kernel_weight = torch.empty(0, dtype=torch.uint8, device=self.qweight.device)
        self._scales_zeros = None

    def _operands(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, int, int]:
        """(kernel weight, scales-and-zeros in `dtype`, padded N, padded K), built once."""
        group = self.config.group_size
        n_pad = math.ceil(self.out_features / N_MULTIPLE) * N_MULTIPLE
        k_pad = self.scales.shape[1] * group
        if self._kernel_weight.numel() == 0:
            self._kernel_weight = self._pack(n_pad, k_pad)
        sz = self._scales_zeros
        if sz is None or sz.dtype != dtype or sz.device != self.scales.device:
            scales = F.pad(self.scales, (0, 0, 0, n_pad - self.out_features), value=1.0).t()
            sz = torch.stack([scales, torch.zeros_like(scales)], dim=-1).to(dtype).contiguous()
            self._scales_zeros = sz
        return self._kernel_weight, sz, n_pad, k_pad

    def _pack(self, n_pad: int, k_pad: int) -> torch.Tensor:
        """The kernel's weight, ROWS rows at a time (its layout is blocks of 32 or 64 rows laid one
        after the other, so chunks of 1024 rows concatenate to the whole; a test checks it). The
        result is allocated before the chunks' temporaries, not after them (as `torch.cat` of the
        parts would): the freed temporaries then lie above it and are reused, instead of staying
        as holes between the layers' kernel weights (measured: ~160 MiB of holes on a 135 M LM)."""
        out = None
        for start in range(0, n_pad, ROWS):
            rows = self.qweight[start:start + ROWS].to(torch.int32).sub_(INT4_MIN)
            pad = (0, k_pad - self.in_features, 0, min(ROWS, n_pad - start) - rows.shape[0])
            if any(pad):
                rows = F.pad(rows, pad, value=-INT4_MIN)
            if out is None and n_pad <= ROWS:
                return _ATEN._convert_weight_to_int4pack_for_cpu(rows, 1)
            if out is None:
                out = torch.empty(n_pad, k_pad // 2, dtype=torch.uint8, device=rows.device)
            part = _ATEN._convert_weight_to_int4pack_for_cpu(rows, 1)
            out[start:start + part.shape[0]].copy_(part)
            del rows, part
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The kernel on CPU, in bf16 (activations and scales rounded to bf16); float math on the
        dequantized weight on other devices and when gradients must flow to the input (the kernel
        has no backward; the codes take none)."""
        if x.device.type not in ("cpu", "meta") or x.dtype not in (torch.float32, torch.bfloat16, torch.float16) \
                or (x.requires_grad and torch.is_grad_enabled()):
            return F.linear(x, self.dequantized().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))
        weight, sz, _, k_pad = self._operands(COMPUTE)
        flat = x.reshape(-1, self.in_features).to(COMPUTE)
        if k_pad != self.in_features:  # the short last group: zero inputs meet zero codes
            flat = F.pad(flat, (0, k_pad - self.in_features))
        token = _LOGICAL.set((self.in_features, self.out_features))
        try:
            out = _ATEN._weight_int4pack_mm_for_cpu(flat.contiguous(), weight, self.config.group_size, sz)
        finally:
            _LOGICAL.reset(token)
        out = out[:, :self.out_features].to(x.dtype)
        if self.bias is not None:
            out = out + self.bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], self.out_features)

    # --- storage and the saved form -------------------------------------------------------------
    def weight_storage_bytes(self) -> int:
        bias = 4 * self.bias.numel() if self.bias is not None else 0
        return math.ceil(self.qweight.numel() / 2) + 4 * self.scales.numel() + bias

    def storage_key(self) -> tuple[object, ...]:
        return id(self.qweight), "int4-packed", self.config.group_size  # its own codes: never tied

    def table_bytes(self) -> int:
        return math.ceil(self.qweight.numel() / 2) + 4 * self.scales.numel()

    def storage_arrays(self, weight: bool = True) -> Iterator[np.ndarray]:
        if weight:
            yield pack_nibbles(self.qweight.detach().cpu()).numpy()
            yield self.scales.detach().float().cpu().numpy()
        if self.bias is not None:
            yield self.bias.detach().float().cpu().numpy()

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        destination[prefix + "codes"] = pack_nibbles(self.qweight.detach())
        destination[prefix + "scales"] = self.scales if keep_vars else self.scales.detach()
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias if keep_vars else self.bias.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        """`codes` + `scales` as saved; a float `weight` (a folder saved when int4 was simulated) is
        quantized on the way in."""
        own = {"codes", "scales", "bias", "weight"}
        shape = (self.out_features, self.in_features)
        with torch.no_grad():
            if prefix + "codes" in state_dict:
                codes = state_dict[prefix + "codes"]
                if codes.dtype != torch.uint8 or codes.numel() != math.ceil(shape[0] * shape[1] / 2):
                    error_msgs.append(f"{prefix}codes: {codes.numel()} {codes.dtype} values, expected "
                                      f"{math.ceil(shape[0] * shape[1] / 2)} uint8 for a {shape[0]}x{shape[1]} weight")
                else:
                    self.qweight.copy_(unpack_nibbles(codes.reshape(-1).cpu(), shape).to(self.qweight.device))
                _load_tensor(self.scales, state_dict, prefix + "scales", missing_keys, error_msgs)
            elif prefix + "weight" in state_dict:
                self.set_weight_(state_dict[prefix + "weight"])
            else:
                missing_keys += [prefix + "codes", prefix + "scales"]
            if self.bias is not None:
                _load_tensor(self.bias, state_dict, prefix + "bias", missing_keys, error_msgs)
        if strict:
            unexpected_keys += [k for k in state_dict if k.startswith(prefix) and "." not in k[len(prefix):]
                                and k[len(prefix):] not in own]
        self._invalidate()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {self.config.summary()} packed"


def build_kernels(model: nn.Module, after_each: Callable[[], None] | None = None) -> int:
    """Build every packed CPU layer's kernel operands now (otherwise the first forward builds
    them, each among that forward's activations, whose freed blocks then stay behind as holes
    between them: ~120 MiB on a 135 M LM); `after_each` runs after each layer (e.g. returning the
    packing's temporaries to the system). The number of layers built."""
    built = 0
    for module in model.modules():
        if isinstance(module, PackedInt4Linear) and module.scales.device.type == "cpu":
            module._operands(COMPUTE)
            built += 1
            if after_each is not None:
                after_each()
    return built


def _load_tensor(target: torch.Tensor, state_dict: dict, key: str, missing: list, errors: list) -> None:
    if key not in state_dict:
        missing.append(key)
    elif state_dict[key].shape != target.shape:
        errors.append(f"{key}: shape {tuple(state_dict[key].shape)}, expected {tuple(target.shape)}")
    else:
        target.copy_(state_dict[key])


def _register_flops() -> None:
    """The kernel is a matmul: 2·M·K·N, as torch counts the float Linear it replaces (torch's
    counter has no formula for it, so realized layers would count no FLOPs). K and N are the
    layer's own (logical) sizes, not the kernel's padded operands (N to 16, K to whole groups):
    a packed 50-output head counts what the float head does, not 64 outputs."""
    from torch.utils.flop_counter import flop_registry, register_flop_formula

    if not kernel_available() or _ATEN._weight_int4pack_mm_for_cpu in flop_registry:
        return

    @register_flop_formula(_ATEN._weight_int4pack_mm_for_cpu)
    def _int4_mm_flop(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
        k, n = _LOGICAL.get() or (x_shape[1], out_shape[1])
        return 2 * x_shape[0] * k * n


_register_flops()
