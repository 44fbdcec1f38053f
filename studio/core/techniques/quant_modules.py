"""Simulated ("fake") quantization layers and the storage arithmetic behind size reports.

The layers keep the float `weight`/`bias` as Parameters and quantize-dequantize them on
every forward, so accuracy can be measured in PyTorch and fine-tuned through a
straight-through estimator; the export step realizes the same choices in a runtime.

Grids follow the runtimes' defaults so the simulation matches what they will compute:
  - int8 weights: symmetric, [-127, 127], per output channel (or per tensor), fp32 scales —
    TFLite's int8 spec and ONNX Runtime's symmetric QDQ weights.
  - int8 activations: asymmetric per tensor on the uint8 grid 0..255 with the range widened to
    include 0 (ONNX Runtime's DynamicQuantizeLinear and its default QUInt8 activations). TFLite's
    int8 activations use the same 256-level asymmetric grid shifted by 128, so one simulation
    serves both.
  - int4 weights: symmetric [-8, 7], one fp32 scale per group of `group_size` consecutive inputs
    (ONNX Runtime MatMulNBits' layout). A fan-in that is not a multiple of the group size gets a
    shorter last group, as MatMulNBits pads K.
  - fp16: weight and bias rounded to half precision; activations stay float.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from studio.core.techniques.quantization import QuantizeConfig

INT8_MAX = 127
INT4_MIN, INT4_MAX = -8, 7
ACT_MIN, ACT_MAX = 0, 255
SCALE_BYTES = 4        # fp32 scales
ACT_ZP_BYTES = 1       # uint8 zero point in the runtime
_EPS = torch.finfo(torch.float32).eps


# ---------------------------------------------------------------- size arithmetic (no tensors)

def int4_groups(fan_in: int, group_size: int) -> int:
    return math.ceil(fan_in / group_size)


def quantized_storage_bytes(out_features: int, fan_in: int, bias_numel: int, config: QuantizeConfig) -> int:
    """Bytes a runtime stores for one layer: codes at their bit width, scales, bias, act qparams."""
    numel = out_features * fan_in
    if config.dtype == "fp16":
        return 2 * (numel + bias_numel)
    bias = 4 * bias_numel
    if config.dtype == "int4":
        return math.ceil(numel / 2) + SCALE_BYTES * out_features * int4_groups(fan_in, config.group_size) + bias
    scales = SCALE_BYTES * (out_features if config.per_channel else 1)
    act = SCALE_BYTES + ACT_ZP_BYTES if config.activations == "static" else 0
    return numel + scales + bias + act


# ---------------------------------------------------------------- fake-quant functions (STE)

def fake_quant_int8_weight(weight: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """Symmetric int8; the aten fake-quant ops pass gradients straight through inside the range."""
    w = weight.float()
    flat = w.detach().reshape(w.shape[0], -1)
    if per_channel:
        scale = (flat.abs().amax(dim=1) / INT8_MAX).clamp(min=_EPS)
        zero = torch.zeros_like(scale, dtype=torch.int32)
        out = torch.fake_quantize_per_channel_affine(w, scale, zero, 0, -INT8_MAX, INT8_MAX)
    else:
        scale = (flat.abs().amax() / INT8_MAX).clamp(min=_EPS).reshape(1)
        zero = torch.zeros(1, dtype=torch.int32, device=w.device)
        out = torch.fake_quantize_per_tensor_affine(w, scale, zero, -INT8_MAX, INT8_MAX)
    return out.to(weight.dtype)


def int4_codes(weight: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(codes out×fan_in in [-8, 7], scales out×groups) for group-wise symmetric int4."""
    flat = weight.detach().float().reshape(weight.shape[0], -1)
    fan_in = flat.shape[1]
    groups = int4_groups(fan_in, group_size)
    padded = F.pad(flat, (0, groups * group_size - fan_in)).reshape(flat.shape[0], groups, group_size)
    scale = (padded.abs().amax(dim=2, keepdim=True) / INT4_MAX).clamp(min=_EPS)
    codes = torch.clamp(torch.round(padded / scale), INT4_MIN, INT4_MAX)
    return codes.reshape(flat.shape[0], -1)[:, :fan_in], scale.squeeze(2)


def fake_quant_int4_weight(weight: torch.Tensor, group_size: int) -> torch.Tensor:
    codes, scale = int4_codes(weight, group_size)
    scale_full = scale.repeat_interleave(group_size, dim=1)[:, :codes.shape[1]]
    q = (codes * scale_full).reshape(weight.shape).to(weight.dtype)
    return weight + (q - weight).detach()  # straight-through: d(q)/d(w) := 1


def fake_quant_fp16(tensor: torch.Tensor) -> torch.Tensor:
    return tensor + (tensor.detach().half().to(tensor.dtype) - tensor.detach())


def activation_qparams(low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 asymmetric scale/zero point; the range always holds 0 so zero padding stays exact."""
    low = torch.clamp(low.detach().float(), max=0.0)
    high = torch.clamp(high.detach().float(), min=0.0)
    scale = ((high - low) / (ACT_MAX - ACT_MIN)).clamp(min=_EPS).reshape(1)
    zero = torch.clamp(torch.round(ACT_MIN - low / scale), ACT_MIN, ACT_MAX).to(torch.int32).reshape(1)
    return scale, zero


def fake_quant_activation(x: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor) -> torch.Tensor:
    out = torch.fake_quantize_per_tensor_affine(x.float(), scale, zero, ACT_MIN, ACT_MAX)
    return out.to(x.dtype)


# ---------------------------------------------------------------- the simulated layers

class _QuantBase(nn.Module):
    """Shared state and behaviour; subclasses supply `_op` (the float op) and the shape."""

    weight: nn.Parameter
    bias: nn.Parameter | None

    def _init_quant(self, weight: nn.Parameter, bias: nn.Parameter | None, config: QuantizeConfig) -> None:
        # The float module's Parameter objects are taken over, not copied: ties (e.g. an output
        # layer sharing the embedding) survive and fine-tuning updates the same tensors.
        self.weight = weight
        self.bias = bias
        self.config = config
        self._set_observer(None)
        object.__setattr__(self, "_float_module", None)
        if config.dtype == "int8" and config.activations == "static":
            # 0 means "not calibrated yet"; load_state_dict fills these on a rebuilt model.
            self.register_buffer("act_scale", torch.zeros(1, dtype=torch.float32, device=weight.device))
            self.register_buffer("act_zero_point", torch.zeros(1, dtype=torch.int32, device=weight.device))

    def _set_observer(self, observer: nn.Module | None) -> None:
        # Kept out of `_modules` so the layer stays children-free and its state_dict unchanged.
        object.__setattr__(self, "_observer", observer)

    @property
    def static(self) -> bool:
        return hasattr(self, "act_scale")

    @property
    def calibrated(self) -> bool:
        return self.static and float(self.act_scale) > 0

    # calibration -------------------------------------------------------------------------
    def start_calibration_(self) -> None:
        """Observe input ranges (MinMax, like ONNX Runtime's default calibrator) on float math."""
        from torch.ao.quantization import MinMaxObserver

        self._set_observer(MinMaxObserver(dtype=torch.quint8, qscheme=torch.per_tensor_affine).to(self.weight.device))

    def freeze_calibration_(self) -> bool:
        """Store the observed range in the buffers; False when this layer saw no input."""
        observer = self._observer
        self._set_observer(None)
        if observer is None or not torch.isfinite(observer.min_val).all():
            return False
        scale, zero = activation_qparams(observer.min_val, observer.max_val)
        self.act_scale.copy_(scale)
        self.act_zero_point.copy_(zero)
        return True

    def abort_calibration_(self) -> None:
        """Drop the observer, keeping the previous (possibly uncalibrated) qparams."""
        self._set_observer(None)

    # forward -----------------------------------------------------------------------------
    def quantized_weight(self) -> torch.Tensor:
        dtype = self.config.dtype
        if dtype == "int8":
            return fake_quant_int8_weight(self.weight, self.config.per_channel)
        if dtype == "int4":
            return fake_quant_int4_weight(self.weight, self.config.group_size)
        return fake_quant_fp16(self.weight)

    def _quantized_bias(self) -> torch.Tensor | None:
        if self.bias is not None and self.config.dtype == "fp16":
            return fake_quant_fp16(self.bias)
        return self.bias

    def _quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.config.dtype != "int8" or self.config.activations is None:
            return x
        if self.calibrated:
            return fake_quant_activation(x, self.act_scale, self.act_zero_point)
        # dynamic, or static that was never calibrated: the range of this batch
        return fake_quant_activation(x, *activation_qparams(x.min(), x.max()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._observer is not None:  # calibrating: float math, ranges like the fp32 model's
            self._observer(x.detach().float())
            return self._call(x, self.weight, self.bias)
        return self._call(self._quantize_input(x), self.quantized_weight(), self._quantized_bias())

    def keep_subclass_(self, module: nn.Module) -> None:
        """Run `module`'s own forward (a Conv2d/Linear subclass that pads, scales, … around the
        op) with the quantized weight, so what the subclass adds survives. Kept out of
        `_modules`: the state_dict stays that of a plain quantized layer."""
        object.__setattr__(self, "_float_module", module)

    @property
    def float_module(self) -> nn.Module | None:
        """The subclass instance whose forward this layer runs, if any (export restores it)."""
        return self._float_module

    def _call(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        module = self._float_module
        if module is None:
            return self._op(x, weight, bias)
        params = module._parameters
        saved = params["weight"], params.get("bias")
        params["weight"] = weight  # the subclass's forward reads self.weight: give it the quantized one
        if saved[1] is not None:
            params["bias"] = bias
        module.train(self.training)
        try:
            return module.forward(x)
        finally:
            params["weight"] = saved[0]
            if saved[1] is not None:
                params["bias"] = saved[1]

    def _op(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    # storage -----------------------------------------------------------------------------
    def weight_storage_bytes(self) -> int:
        """Runtime bytes of this layer (codes, scales, bias, activation qparams)."""
        out = self.weight.shape[0]
        bias = self.bias.numel() if self.bias is not None else 0
        return quantized_storage_bytes(out, self.weight.numel() // out, bias, self.config)

    def storage_key(self) -> tuple[object, ...]:
        """Which table this layer stores: its weight tensor and the grid the codes depend on (not
        activations). Two layers tied to one weight on the same grid (an LM head and its
        embedding, int8 per row) store one table; on different grids, two."""
        config = self.config
        grid = {"int8": config.per_channel, "int4": config.group_size}.get(config.dtype)
        return id(self.weight), config.dtype, grid

    def table_bytes(self) -> int:
        """The weight's codes and scales alone (what a second layer tied to it does not store again)."""
        out = self.weight.shape[0]
        return quantized_storage_bytes(out, self.weight.numel() // out, 0, dataclasses.replace(self.config,
                                                                                               activations=None))

    def storage_arrays(self, weight: bool = True) -> Iterator[np.ndarray]:
        """The arrays an exported file holds; their sizes add up to `weight_storage_bytes`
        (without the weight's codes and scales when `weight` is False: a tied table stored once)."""
        with torch.no_grad():
            w = self.weight.detach().float().cpu() if weight else None
            bias = None if self.bias is None else self.bias.detach().float().cpu()
            if self.config.dtype == "fp16":
                if w is not None:
                    yield w.half().numpy()
                if bias is not None:
                    yield bias.half().numpy()
                return
            if w is None:
                pass
            elif self.config.dtype == "int4":
                codes, scale = int4_codes(w, self.config.group_size)
                nibbles = (codes.flatten().to(torch.int16) - INT4_MIN).to(torch.uint8)
                if nibbles.numel() % 2:
                    nibbles = torch.cat([nibbles, nibbles.new_zeros(1)])
                yield (nibbles[0::2] | (nibbles[1::2] << 4)).numpy()
                yield scale.numpy()
            else:
                flat = w.reshape(w.shape[0], -1)
                absmax = flat.abs().amax(dim=1 if self.config.per_channel else None)
                scale = (absmax / INT8_MAX).clamp(min=_EPS).reshape(-1)
                view = scale.reshape(-1, 1) if self.config.per_channel else scale
                yield torch.clamp(torch.round(flat / view), -INT8_MAX, INT8_MAX).to(torch.int8).numpy()
                yield scale.numpy()
            if self.config.dtype == "int8" and self.static:
                yield self.act_scale.detach().cpu().numpy()
                yield self.act_zero_point.detach().cpu().to(torch.uint8).numpy()
            if bias is not None:
                yield bias.numpy()

    def extra_repr(self) -> str:
        text = f"{self.config.summary()}"
        if self.static:
            text += f", act_scale={float(self.act_scale):.4g}" if self.calibrated else ", uncalibrated"
        return text


class QuantLinear(_QuantBase):
    """nn.Linear with simulated quantization of its weight (and input for int8)."""

    layer_kind = "Linear"  # the op it computes, for code that must not import techniques

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, config: QuantizeConfig) -> None:
        super().__init__()
        self._init_quant(weight, bias, config)
        self.out_features, self.in_features = weight.shape

    @classmethod
    def from_float(cls, module: nn.Linear, config: QuantizeConfig) -> QuantLinear:
        layer = cls(module.weight, module.bias, config)
        if overrides_forward(module):
            layer.keep_subclass_(module)
        return layer

    def _op(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, {super().extra_repr()}"


class QuantConv2d(_QuantBase):
    """nn.Conv2d (grouped/depthwise too) with simulated quantization, per-channel along dim 0."""

    layer_kind = "Conv2d"

    def __init__(self, weight: nn.Parameter, bias: nn.Parameter | None, config: QuantizeConfig, *,
                 stride: tuple[int, int], padding: tuple[int, int] | str, dilation: tuple[int, int],
                 groups: int, padding_mode: str = "zeros") -> None:
        super().__init__()
        self._init_quant(weight, bias, config)
        self.out_channels = weight.shape[0]
        self.in_channels = weight.shape[1] * groups
        self.kernel_size = tuple(weight.shape[2:])
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.groups, self.padding_mode = groups, padding_mode
        # nn.Conv2d precomputes this for non-zero padding modes; same convention here.
        self._reversed_padding_repeated_twice = (
            [p for p in reversed(padding) for _ in range(2)] if not isinstance(padding, str) else [0, 0, 0, 0])

    @classmethod
    def from_float(cls, module: nn.Conv2d, config: QuantizeConfig) -> QuantConv2d:
        layer = cls(module.weight, module.bias, config, stride=module.stride, padding=module.padding,
                    dilation=module.dilation, groups=module.groups, padding_mode=module.padding_mode)
        if overrides_forward(module):
            layer.keep_subclass_(module)
        return layer

    def _op(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.padding_mode != "zeros":
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"groups={self.groups}, {super().extra_repr()}")


QUANT_MODULES = (QuantLinear, QuantConv2d)


def overrides_forward(module: nn.Module) -> bool:
    """A Conv2d/Linear subclass with its own forward (TF-"same" padding, a post-scale, …)."""
    base = nn.Conv2d if isinstance(module, nn.Conv2d) else nn.Linear
    return type(module).forward is not base.forward


def extra_state(module: nn.Module) -> list[str]:
    """Parameters/buffers a subclass holds besides weight and bias (in itself or its children)."""
    names = [n for n, _ in module.named_parameters() if n not in ("weight", "bias")]
    return names + [n for n, _ in module.named_buffers()]


def storage_bytes(model: nn.Module) -> int:
    """Model size at real bit widths: quantized layers at their runtime storage, a weight tied
    between quantized layers on one grid once (`storage_key`), every other unique parameter and
    persistent buffer at its dtype size (a float layer tied to a quantized one still needs its
    float tensor). `measure.stored_bytes` counts the same from the arrays themselves."""
    counted: set[int] = set()
    tables: set[tuple[object, ...]] = set()
    total = 0
    for module in model.modules():
        if hasattr(module, "weight_storage_bytes") and hasattr(module, "storage_key"):
            key = module.storage_key()
            total += module.weight_storage_bytes() - (module.table_bytes() if key in tables else 0)
            tables.add(key)
            continue
        tensors = list(module.parameters(recurse=False))
        tensors += [b for n, b in module.named_buffers(recurse=False) if n not in module._non_persistent_buffers_set]
        for tensor in tensors:
            if id(tensor) not in counted:
                counted.add(id(tensor))
                total += tensor.numel() * tensor.element_size()
    return total
