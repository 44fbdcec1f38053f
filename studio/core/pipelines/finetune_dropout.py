"""Attention-probability dropout while fine-tuning.

With dropout on the attention probabilities, PyTorch's scaled_dot_product_attention cannot use
its fused CPU kernel and falls back to the math path (softmax, a Bernoulli mask and two matmuls,
all kept for the backward). On the pruned MiniLM sample that made the student's training forward
cost more than the full teacher's; with the rate at 0 its forward costs 32 % and the whole step
13 % less CPU (teacher forward included), and one epoch still reaches 76.8 % (76.5 % with it). Distillation from
the original's soft targets already regularises, so pretrained transformers fine-tune without it
by default ("auto"); the model's own rates are put back afterwards (the saved model keeps them)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from torch import nn

# Hugging Face attention modules keep the attention-probability rate under one of these names
# (BERT/DistilBERT: `dropout`, GPT-2: `attn_dropout`, Llama/Mistral: `attention_dropout`,
# ViT: `dropout_prob`); nn.MultiheadAttention has a float `dropout`. Residual/output dropouts
# (`resid_dropout`, BertSelfOutput.dropout) live under other names or modules and are left alone.
RATE_NAMES = ("dropout", "attn_dropout", "attention_dropout", "dropout_prob")


def attention_rates(model: nn.Module) -> list[tuple[nn.Module, str, float]]:
    """(module, attribute, rate) of every attention-probability dropout in `model`."""
    found = []
    for module in model.modules():
        if not type(module).__name__.endswith("Attention"):
            continue
        for name in RATE_NAMES:
            value = getattr(module, name, None)
            if isinstance(value, nn.Dropout):
                found.append((module, name, float(value.p)))
            elif isinstance(value, float) and not isinstance(value, bool):
                found.append((module, name, value))
    return found


def _set(module: nn.Module, name: str, rate: float) -> None:
    value = getattr(module, name)
    if isinstance(value, nn.Dropout):
        value.p = rate
    else:
        setattr(module, name, rate)


@contextmanager
def attention_dropout(model: nn.Module, rate: float | None) -> Iterator[int]:
    """Sets every attention-probability dropout of `model` to `rate` (None: leaves them) and
    restores them on exit; yields how many non-zero rates it changed."""
    found = [] if rate is None else attention_rates(model)
    changed = sum(1 for _, _, old in found if old != rate)
    for module, name, _ in found:
        _set(module, name, rate)
    try:
        yield changed
    finally:
        for module, name, old in found:
            _set(module, name, old)
