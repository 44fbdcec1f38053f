"""Quantization: int8 (weights per channel or per tensor; activations dynamic, static or
none), int4 group-wise weight-only, and fp16.

Inside the studio it is simulated (quantize-dequantize, see `quant_modules`) so accuracy is
measured in PyTorch and can be fine-tuned — except int4 on Linear layers, which is realized:
packed codes and torch's CPU int4 kernel (`int4_packed`; its codes stay frozen while the rest
fine-tunes). The export step realizes the same per-layer choices
in ONNX Runtime / TFLite. Sizes are reported at the real bit widths plus scales/zero points.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

import torch
from torch import nn

from studio.core.base.errors import StudioError
from studio.core.techniques.base import (ApplyContext, Estimate, LayerChange, Technique, TechniqueConfig,
                                         option, register, replace_submodule_)
from studio.core.techniques.int4_packed import PackedInt4Linear, why_simulated
from studio.core.techniques.quant_modules import (QUANT_MODULES, QuantConv2d, QuantLinear, extra_state,
                                                  int4_groups, overrides_forward, quantized_storage_bytes,
                                                  storage_bytes)
from studio.core.techniques.quant_embedding import QuantEmbedding, embedding_problems, is_embedding, table_config

DTYPES = {"int8": 8, "int4": 4, "fp16": 16}
ACTIVATIONS = ("dynamic", "static", None)
MIN_GROUP = 8
SWEEP_PRECISIONS = {  # sensitivity settings: label → config body
    "int8": {"dtype": "int8", "activations": None},
    "int8 w+a": {"dtype": "int8", "activations": "dynamic"},
    "int4": {"dtype": "int4", "activations": None, "group_size": 128},
    "int4 g32": {"dtype": "int4", "activations": None, "group_size": 32},
    "fp16": {"dtype": "fp16", "activations": None},
}


@dataclass(frozen=True)
class QuantizeConfig(TechniqueConfig):
    """`activations` only applies to int8; int4 (weight-only) and fp16 keep float activations."""

    dtype: str = option("int8", choices=tuple(DTYPES), help="int8 weights (and activations), int4 weights in "
                                                             "groups, or half-precision weights")
    activations: str | None = option("dynamic", choices=ACTIVATIONS,
                                     help="int8 only: ranges per batch (dynamic), calibrated (static) or float (none)")
    group_size: int = option(128, help="int4: inputs sharing one scale (a power of two of at least 8)")
    per_channel: bool = option(True, help="int8: one weight scale per output channel instead of one per tensor")

    def __post_init__(self) -> None:
        # The "dynamic" default means nothing for weight-only dtypes; normalizing it keeps
        # `int4` and `int4, activations: null` one config (no false plan conflicts).
        if self.dtype in ("int4", "fp16") and self.activations == "dynamic":
            object.__setattr__(self, "activations", None)

    def to_dict(self) -> dict[str, Any]:
        # `activations: null` (int8 weight-only) must survive the round trip, unlike other Nones.
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> QuantizeConfig:
        """Strict: a recipe with an unusable value fails where it is read, naming every problem."""
        config = super().from_dict(data)
        problems = config.problems()
        if problems:
            raise StudioError("; ".join(problems))
        return config

    def problems(self) -> list[str]:
        out = []
        if self.dtype not in DTYPES:
            widths = ", ".join(f"{name} ({bits}-bit)" for name, bits in DTYPES.items())
            out.append(f"dtype {self.dtype!r} is not supported; supported bit widths: {widths}")
        if self.activations not in ACTIVATIONS:
            out.append(f"activations {self.activations!r} must be 'dynamic', 'static' or null (weights only)")
        elif self.activations == "static" and self.dtype in ("int4", "fp16"):
            out.append(f"{self.dtype} keeps float activations, so static activation quantization does not apply; "
                       "remove 'activations' or use dtype int8")
        if self.dtype == "int4":
            size = self.group_size
            if isinstance(size, bool) or not isinstance(size, int) or size < MIN_GROUP or size & (size - 1):
                out.append(f"group_size {size!r} must be a power of two of at least {MIN_GROUP} (e.g. 32, 64, 128)")
        if not isinstance(self.per_channel, bool):
            out.append(f"per_channel {self.per_channel!r} must be true or false")
        return out

    def summary(self) -> str:
        if self.dtype == "int4":
            return f"int4 g{self.group_size}"
        if self.dtype != "int8":
            return self.dtype
        text = {"dynamic": "int8 w/a-dyn", "static": "int8 w/a-static"}.get(self.activations, "int8 w-only")
        return text if self.per_channel else f"{text} per-tensor"


def _float_layer(module: nn.Module) -> bool:
    # MultiheadAttention reads `out_proj.weight` directly, so swapping that Linear would be silently
    # ignored; PyTorch marks it with this subclass for exactly that reason.
    if isinstance(module, nn.modules.linear.NonDynamicallyQuantizableLinear):
        return False
    if is_embedding(module):  # tables too (quant_embedding): half of a small BERT's parameters
        return True
    return isinstance(module, (nn.Linear, nn.Conv2d)) and not isinstance(module, QUANT_MODULES)


def _subclass_problems(module: nn.Module) -> list[str]:
    """A subclass's own forward is kept (it runs on the quantized weight); state it holds
    besides weight/bias would be invisible to the quantized layer, so such layers are refused."""
    extra = extra_state(module) if overrides_forward(module) else []
    if extra:
        return [f"{type(module).__name__} holds {', '.join(extra[:3])} besides its weight and bias, which the "
                "quantized layer would not carry; exclude it (quantize: null)"]
    return []


def _shape(module: nn.Module) -> tuple[int, int, int]:
    """(output channels, fan-in per output, bias elements)."""
    weight = module.weight
    bias = module.bias.numel() if getattr(module, "bias", None) is not None else 0  # tables have none
    return weight.shape[0], weight[0].numel(), bias


def quantize_module(module: nn.Module, config: QuantizeConfig) -> QuantLinear | QuantConv2d | QuantEmbedding:
    """The simulated replacement of one float Linear/Conv2d/Embedding (shares its Parameters)."""
    if is_embedding(module):
        return QuantEmbedding.from_float(module, config)
    if isinstance(module, nn.Conv2d):
        return QuantConv2d.from_float(module, config)
    if realizes(module, config):
        return PackedInt4Linear.from_linear(module, config)
    return QuantLinear.from_float(module, config)


def realizes(module: nn.Module, config: QuantizeConfig) -> bool:
    """int4 on a plain Linear is held packed (int4_packed), not simulated: it only reads the
    weight, so the layer needs no private copy of it."""
    return config.dtype == "int4" and isinstance(module, nn.Linear) and why_simulated(module, config.group_size) is None


@register
class Quantize(Technique):
    name = "quantize"
    config_type = QuantizeConfig
    order = 2
    label = "Quantize…"
    supported_types = "Linear, Conv2d, Embedding"
    noun = "quantization"
    simulated = True  # quantize-dequantize around float math
    aliases = ("quant", "quantization")
    sweep_defaults = ("int8", "int8 w+a", "int4", "fp16")

    def supports(self, module: nn.Module) -> bool:
        return _float_layer(module)

    def reads_only(self, module: nn.Module, config: QuantizeConfig) -> bool:
        """Applying `config` builds a new layer from `module` without sharing or changing its
        tensors, so apply needs no private copy of the layer (see `pipelines.apply`)."""
        return realizes(module, config)

    def check(self, name: str, module: nn.Module, config: QuantizeConfig) -> list[str]:
        # int4 fan-ins that are not a multiple of group_size are handled with a shorter last group.
        if not module.weight.is_floating_point():
            return [f"its weights are {module.weight.dtype}, not floating point; quantize the float model"]
        return embedding_problems(module) if is_embedding(module) else _subclass_problems(module)

    def sweep_setting(self, raw: str, text: str) -> tuple[str, dict[str, Any]]:
        if raw not in SWEEP_PRECISIONS:
            raise StudioError(f"Unknown precision {text!r}; use one of: {', '.join(SWEEP_PRECISIONS)}.")
        return raw, dict(SWEEP_PRECISIONS[raw])

    def project(self, module: nn.Module, config: QuantizeConfig, estimate: Estimate) -> Estimate:
        config = table_config(config) if is_embedding(module) else config
        out, fan_in, bias = _shape(module)
        dense_params = out * fan_in + bias
        size = module.weight.element_size()
        if estimate.parts:  # replaced by factor layers: each is quantized on its own
            dense_params = sum(o * f + b for o, f, b in estimate.parts)
            stored = sum(quantized_storage_bytes(o, f, b, config) for o, f, b in estimate.parts)
        elif estimate.params == dense_params:
            stored = quantized_storage_bytes(out, fan_in, bias, config)
        else:
            # An earlier technique reshaped the layer (e.g. low-rank factors): scale codes by the
            # projected parameter count, keep this layer's scale overhead (approximate).
            dense_params = estimate.params
            stored = quantized_storage_bytes(out, max(1, (estimate.params - bias) // max(out, 1)), bias, config)
        return Estimate(estimate.params, estimate.bytes - dense_params * size + stored, estimate.flops,
                        estimate.nonzero)

    def apply_(self, model: nn.Module, targets: dict[str, QuantizeConfig],
               context: ApplyContext) -> Iterator[LayerChange]:
        """Swap each target for its simulated layer. Without static targets each change is
        yielded as it happens; with them all swaps come first (cheap), then one calibration
        pass over the data, then the changes in model order with their calibration details."""
        static = any(c.dtype == "int8" and c.activations == "static" for c in targets.values())
        swapped: list[tuple[str, QuantLinear | QuantConv2d, int]] = []
        simulated: dict[str, list[str]] = {}  # int4 layers the CPU kernel cannot take: why → names
        shared, untied = _shared_tensors(model) if any(c.dtype == "int4" for c in targets.values()) else set(), []
        for name, config in targets.items():
            context.check_cancel()
            module = model.get_submodule(name)
            problems = embedding_problems(module) if is_embedding(module) else _subclass_problems(module)
            if problems:
                raise StudioError(f"layer {name}: quantize: {problems[0]}")
            params = sum(p.numel() for p in module.parameters())
            if config.dtype == "int4" and isinstance(module, nn.Linear) and not realizes(module, config):
                simulated.setdefault(why_simulated(module, config.group_size) or "", []).append(name)
            elif realizes(module, config) and id(module.weight) in shared:
                untied.append(name)
            layer = quantize_module(module, config)
            replace_submodule_(model, name, layer)
            if static:
                swapped.append((name, layer, params))
            else:
                yield LayerChange(name, self.name, _detail(layer), params, params)
        for why, names in simulated.items():
            context.warnings.append(f"quantize: int4 on {len(names)} layer(s) is simulated in float, not packed: {why} "
                                    f"({', '.join(names[:3])}{', …' if len(names) > 3 else ''}).")
        if untied:
            context.warnings.append(f"quantize: int4 on {', '.join(untied[:3])} unties a weight shared with another "
                                    "layer (e.g. an LM head tied to its embedding): that layer keeps the float tensor "
                                    "and this one gets its own codes, so the model grows; exclude it (quantize: null) "
                                    "to keep the tie.")
        if not static:
            return
        batches = calibrate_(model, context)
        for name, layer, params in swapped:
            yield LayerChange(name, self.name, _detail(layer, batches), params, params)


def _shared_tensors(model: nn.Module) -> set[int]:
    """ids of parameters held by more than one module (tied weights)."""
    seen: set[int] = set()
    shared: set[int] = set()
    for module in model.modules():
        for param in module.parameters(recurse=False):
            (shared if id(param) in seen else seen).add(id(param))
    return shared


def calibrate_(model: nn.Module, context: ApplyContext) -> int:
    """Run the calibration batches through `model` (eval mode, no grad) so every static layer
    records its input range, then freeze the ranges. Returns the number of batches."""
    layers = [m for m in model.modules() if isinstance(m, QUANT_MODULES) and m.static]
    training = {m: m.training for m in model.modules()}
    model.eval()  # dropout off, BatchNorm statistics untouched
    batches = 0
    try:
        for layer in layers:
            layer.start_calibration_()
        with torch.no_grad():
            for args, kwargs in context.calibration_batches():
                context.check_cancel()
                model(*args, **kwargs)
                batches += 1
    except BaseException:
        for layer in layers:
            layer.abort_calibration_()
        raise
    finally:
        for module, flag in training.items():
            module.train(flag)
    unseen = [layer for layer in layers if not layer.freeze_calibration_()]
    if batches == 0:
        context.warnings.append("quantize: no calibration batches; static layers fall back to per-batch ranges.")
    elif unseen:
        context.warnings.append(f"quantize: {len(unseen)} static layer(s) received no input during calibration; "
                                "they fall back to per-batch ranges.")
    return batches


def _detail(layer: QuantLinear | QuantConv2d | QuantEmbedding, batches: int | None = None) -> str:
    if isinstance(layer, QuantEmbedding):
        return layer.detail()
    config = layer.config
    packed = isinstance(layer, PackedInt4Linear)  # its `weight` is computed: read the shape instead
    out, fan_in = (layer.out_features, layer.in_features) if packed else _shape(layer)[:2]
    if config.dtype == "fp16":
        text = "fp16 weights and bias"
    elif config.dtype == "int4":
        groups = int4_groups(fan_in, config.group_size)
        last = fan_in - (groups - 1) * config.group_size
        if groups == 1 and last < config.group_size:
            text = f"int4 weights, one group of {fan_in} per output (fan-in below group_size {config.group_size})"
        else:
            text = f"int4 weights in groups of {config.group_size} ({groups} per output"
            text += f", last one {last} wide)" if last != config.group_size else ")"
        text += ", packed (torch's CPU int4 kernel)" if packed else ", simulated in float"
    else:
        text = f"int8 {'per-channel' if config.per_channel else 'per-tensor'} weights, "
        if config.activations == "dynamic":
            text += "dynamic activations"
        elif config.activations is None:
            text += "float activations"
        elif layer.calibrated:
            text += f"static activations (calibrated on {batches} batch{'es' if batches != 1 else ''})"
        else:
            text += "static activations (not calibrated: per-batch ranges)"
    return f"{text}; {layer.weight_storage_bytes():,} bytes"


__all__ = ["Quantize", "QuantizeConfig", "QuantConv2d", "QuantLinear", "calibrate_", "quantize_module",
           "storage_bytes"]
