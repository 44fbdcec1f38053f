"""Turn a studio model into what exporters take: simulated-quantization layers back to
float layers (the target runtime's quantizer realizes them), plus which layers the plan
marked for which precision."""

from __future__ import annotations

import copy

from torch import nn

from studio.core.techniques.base import replace_submodule_
from studio.core.techniques.quant_embedding import QuantEmbedding
from studio.core.techniques.quant_modules import QuantConv2d, QuantLinear
from studio.core.techniques.quantization import QuantizeConfig


def float_copy(model: nn.Module) -> tuple[nn.Module, dict[str, QuantizeConfig]]:
    """A deep copy without simulated quantization, and {layer name: its QuantizeConfig}."""
    model = copy.deepcopy(model).eval()
    marks: dict[str, QuantizeConfig] = {}
    for name, module in list(model.named_modules()):
        if isinstance(module, (QuantLinear, QuantConv2d)) and module.float_module is not None:
            layer = module.float_module  # the user's Conv2d/Linear subclass (its padding etc.), same Parameters
        elif isinstance(module, QuantEmbedding):
            layer = module.to_float()  # the runtime's quantizer stores the table in 8 bits
        elif isinstance(module, QuantLinear):
            layer = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
        elif isinstance(module, QuantConv2d):
            layer = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                              module.padding, module.dilation, module.groups, module.bias is not None,
                              module.padding_mode)
        else:
            continue
        layer.weight = module.weight
        if module.bias is not None:
            layer.bias = module.bias
        marks[name] = module.config
        replace_submodule_(model, name, layer.eval())
    return model, marks
