"""Simulated quantization of Embedding tables (issue 12): the word-embedding table is about half
of a small BERT's parameters, so int8 that stops at the Linear layers leaves a BERT classifier
at 0.50x its fp32 bytes.

A table row is what a lookup returns, so the grid is per row: int8 symmetric [-127, 127] with
one fp32 scale per row (per_channel; one scale per table otherwise) — the AI Edge Quantizer's
channel-wise int8 EMBEDDING_LOOKUP in TFLite. int4 uses groups along each row, fp16 halves.
A lookup has no input to quantize, so an int8 table is always weight-only. The layer shares the
float table's Parameter (ties and fine-tuning keep working) and its storage is counted from the
arrays a runtime stores (`storage_arrays`), like the Linear/Conv2d ones.

Export turns it back into a float Embedding (`to_float`); the runtimes realize it: ONNX
Runtime's quantizer stores the table as an 8-bit Gather / QEmbedLayerNormalization input (one
asymmetric uint8 grid per table: coarser than the simulation's per-row scales), the AI Edge
Quantizer as int8 EMBEDDING_LOOKUP weights with per-row scales."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from studio.core.techniques.quant_modules import _QuantBase, int4_groups

if TYPE_CHECKING:
    from studio.core.techniques.quantization import QuantizeConfig


def is_embedding(module: nn.Module) -> bool:
    return isinstance(module, nn.Embedding)


def table_config(config: QuantizeConfig) -> QuantizeConfig:
    """The config an Embedding really gets: int8 tables are weight-only (nothing to calibrate)."""
    if config.dtype == "int8" and config.activations is not None:
        return dataclasses.replace(config, activations=None)
    return config


def embedding_problems(module: nn.Module) -> list[str]:
    if module.max_norm is not None:
        return ["the Embedding renormalizes rows (max_norm), which changes its weights in place; exclude it "
                "(quantize: null)"]
    return []


class QuantEmbedding(_QuantBase):
    """nn.Embedding whose table is quantize-dequantized on every lookup (straight-through)."""

    layer_kind = "Embedding"

    def __init__(self, weight: nn.Parameter, config: QuantizeConfig, *, padding_idx: int | None = None,
                 scale_grad_by_freq: bool = False, sparse: bool = False) -> None:
        super().__init__()
        self._init_quant(weight, None, table_config(config))
        self.num_embeddings, self.embedding_dim = weight.shape
        self.padding_idx = padding_idx
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse

    @classmethod
    def from_float(cls, module: nn.Embedding, config: QuantizeConfig) -> QuantEmbedding:
        layer = cls(module.weight, config, padding_idx=module.padding_idx,
                    scale_grad_by_freq=module.scale_grad_by_freq, sparse=module.sparse)
        if type(module).forward is not nn.Embedding.forward:  # e.g. a scaled word embedding: keep its forward
            layer.keep_subclass_(module)
        return layer

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self._float_module is not None:
            return self._call(ids, self.quantized_weight(), None)
        return F.embedding(ids, self.quantized_weight(), self.padding_idx, None, 2.0, self.scale_grad_by_freq,
                           self.sparse)

    def to_float(self) -> nn.Embedding:
        """The float Embedding a runtime's quantizer starts from (same Parameter)."""
        if self._float_module is not None:
            return self._float_module
        layer = nn.Embedding(self.num_embeddings, self.embedding_dim, self.padding_idx,
                             scale_grad_by_freq=self.scale_grad_by_freq, sparse=self.sparse,
                             device="meta")
        layer.weight = self.weight
        return layer

    def detail(self) -> str:
        config = self.config
        if config.dtype == "fp16":
            text = "fp16 table"
        elif config.dtype == "int4":
            groups = int4_groups(self.embedding_dim, config.group_size)
            text = f"int4 table, {groups} group(s) of up to {config.group_size} per row"
        else:
            text = f"int8 table, {'one scale per row' if config.per_channel else 'one scale'}"
        return f"{text} ({self.num_embeddings:,} rows); {self.weight_storage_bytes():,} bytes"

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, {super().extra_repr()}"


__all__ = ["QuantEmbedding", "embedding_problems", "is_embedding", "table_config"]
