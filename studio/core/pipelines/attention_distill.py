"""TinyBERT's attention-map loss (Jiao et al. 2020), next to the hidden-state MSE: each student
self-attention layer matches the attention probabilities of the teacher layer it came from.

- Which layers: `settings.finetune.attention`, layer-name patterns matching a self-attention
  module or a block holding one (e.g. "bert.encoder.layer.*").
- Student ← teacher: through the layer map layer dropping leaves (`teacher_name`), as the
  hidden-state loss does.
- Heads: head pruning records the original number of each kept head (`studio_kept_heads`), so a
  pruned layer's heads match the same heads of the teacher; a layer whose head origin is not
  known matches the average map over heads.
- Probabilities only exist in the eager attention (SDPA never forms them), so both models run
  the eager attention during a training step (the same numbers); their setting is restored after.
- The loss is the squared error summed over the keys of each row (a row is a distribution, so
  this does not shrink with the sequence length), averaged over rows, heads and the batch. The
  student's maps are taken after attention dropout in training mode (unbiased: dropout keeps
  the expectation)."""

from __future__ import annotations

import contextlib
import fnmatch
from typing import Any, Iterator

import torch
from torch import nn

from studio.core.pipelines.finetune import teacher_name
from studio.core.techniques.heads import KEPT_HEADS


def is_self_attention(module: nn.Module) -> bool:
    return isinstance(getattr(module, "attention_head_size", None), int) and \
        all(isinstance(getattr(module, n, None), nn.Linear) for n in ("query", "key", "value"))


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    parts = name.split(".")
    names = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]  # the module and the blocks above it
    return any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns)


class AttentionCapture:
    """Forward hooks recording the attention probabilities (batch, heads, queries, keys) that
    BERT-family self-attention modules return as their second output."""

    def __init__(self, model: nn.Module, patterns: tuple[str, ...]) -> None:
        self.model = model
        self.modules = {n: m for n, m in model.named_modules() if n and is_self_attention(m) and _matches(n, patterns)}
        self.maps: dict[str, torch.Tensor] = {}
        self.handles = [m.register_forward_hook(self._hook(n)) for n, m in self.modules.items()]

    def _hook(self, name: str):
        def hook(_module, _args, output):
            probs = output[1] if isinstance(output, (tuple, list)) and len(output) > 1 else None
            if isinstance(probs, torch.Tensor) and probs.dim() == 4:
                self.maps[name] = probs
        return hook

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


@contextlib.contextmanager
def eager_attention(*models: nn.Module) -> Iterator[None]:
    """The eager attention (which forms the probabilities) in `models`, restored after."""
    configs = {id(c): c for model in models for m in model.modules()
               if (c := getattr(m, "config", None)) is not None and hasattr(c, "_attn_implementation")}
    saved = {key: c._attn_implementation for key, c in configs.items()}
    try:
        for config in configs.values():
            config._attn_implementation = "eager"
        yield
    finally:
        for key, config in configs.items():
            config._attn_implementation = saved[key]


def map_loss(student: torch.Tensor, teacher: torch.Tensor, kept: Any = None) -> torch.Tensor | None:
    """Per-row squared error of two attention maps; None when their shapes cannot be matched."""
    if student.shape[0] != teacher.shape[0] or student.shape[2:] != teacher.shape[2:]:
        return None
    if student.shape[1] != teacher.shape[1]:
        if kept is not None and len(kept) == student.shape[1] and max(kept) < teacher.shape[1]:
            teacher = teacher[:, list(kept)]
        else:
            student, teacher = student.mean(1, keepdim=True), teacher.mean(1, keepdim=True)
    return (student.float() - teacher.float()).pow(2).sum(-1).mean()


class AttentionLoss:
    """The attention term of one training step: hooks on both models, the eager attention
    while they run, the mean of the mapped layers' map losses."""

    def __init__(self, teacher: nn.Module, student: nn.Module, patterns: tuple[str, ...],
                 layer_map: dict[str, str] | None = None) -> None:
        self.teacher, self.student, self.layer_map = teacher, student, dict(layer_map or {})
        self.captures = (AttentionCapture(student, patterns), AttentionCapture(teacher, patterns))

    @classmethod
    def for_settings(cls, teacher: nn.Module, student: nn.Module, settings: Any,
                     layer_map: dict[str, str] | None = None) -> AttentionLoss | None:
        patterns = tuple(getattr(settings, "attention", ()) or ())
        return cls(teacher, student, patterns, layer_map) if patterns else None

    def running(self) -> contextlib.AbstractContextManager:
        for capture in self.captures:
            capture.maps.clear()
        return eager_attention(self.student, self.teacher)

    def pairs(self) -> list[tuple[str, str]]:
        """(student layer, teacher layer) of every captured student self-attention module."""
        return [(name, teacher_name(name, self.layer_map)) for name in self.captures[0].modules]

    def loss(self) -> torch.Tensor | None:
        student, teacher = self.captures
        losses = []
        for name, target in self.pairs():
            if name in student.maps and target in teacher.maps:
                kept = getattr(student.modules[name], KEPT_HEADS, None)
                value = map_loss(student.maps[name], teacher.maps[target].detach(), kept)
                if value is not None:
                    losses.append(value)
        return torch.stack(losses).mean() if losses else None

    def close(self) -> None:
        for capture in self.captures:
            capture.detach()


@contextlib.contextmanager
def running(term: AttentionLoss | None) -> Iterator[None]:
    """`term.running()`, or nothing when there is no attention term."""
    if term is None:
        yield
    else:
        with term.running():
            yield


__all__ = ["AttentionCapture", "AttentionLoss", "KEPT_HEADS", "eager_attention", "map_loss", "running"]
