"""A uniform callable for exporters: positional inputs in input-spec order, one output
tensor (logits when the model has them), integer inputs cast to what the model expects."""

from __future__ import annotations

import torch
from torch import nn

from studio.core.model.input_spec import InputSpec
from studio.core.model.measure import primary_output


class ExportWrapper(nn.Module):
    def __init__(self, model: nn.Module, spec: InputSpec, int_dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.model = model
        self.names = [t.name for t in spec.tensors]
        self.keyword = spec.keyword
        self.dtypes = [getattr(torch, t.dtype) for t in spec.tensors]
        self.int_dtype = int_dtype  # e.g. int32 token ids for TFLite, cast back inside the graph

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        if self.int_dtype is not None:
            inputs = tuple(x.to(d) if not d.is_floating_point else x for x, d in zip(inputs, self.dtypes))
        if self.keyword:
            return primary_output(self.model(**dict(zip(self.names, inputs))))
        return primary_output(self.model(*inputs))


def example_args(spec: InputSpec, int_dtype: torch.dtype | None = None, seed: int = 0) -> tuple[torch.Tensor, ...]:
    args, kwargs = spec.make_inputs(seed)
    values = [kwargs[t.name] for t in spec.tensors] if spec.keyword else list(args)
    if int_dtype is not None:
        values = [v.to(int_dtype) if not v.is_floating_point() else v for v in values]
    return tuple(values)
