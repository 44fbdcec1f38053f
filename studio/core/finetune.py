"""Fine-tuning settings and the knowledge-distillation loss (Hinton et al.: soft targets at
temperature T, scaled by T², plus hard-label cross-entropy; optional hidden-state MSE
between same-named layers of teacher and student, as in TinyBERT)."""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from studio.core.errors import StudioError


@dataclass(frozen=True)
class FinetuneSettings:
    """Lives in the recipe under `settings.finetune`, so a run replays exactly."""

    epochs: int = 0
    lr: float = 1e-3
    batch_size: int = 32
    distill: bool = True
    alpha: float = 0.7           # weight of the soft (teacher) loss; 1 - alpha for hard labels
    temperature: float = 4.0
    hidden: tuple[str, ...] = ()  # layer-name patterns whose outputs the student matches (MSE)
    hidden_weight: float = 1.0
    eval_interval: int = 50       # steps between validation evaluations
    seed: int = 0
    max_steps: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> FinetuneSettings:
        data = dict(data or {})
        allowed = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise StudioError(f"settings.finetune: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        if "hidden" in data:
            data["hidden"] = tuple(data["hidden"] or ())
        settings = cls(**data)
        problems = settings.problems()
        if problems:
            raise StudioError("settings.finetune: " + "; ".join(problems))
        return settings

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return {k: v for k, v in out.items() if v is not None}

    def problems(self) -> list[str]:
        out = []
        if self.epochs < 0 or self.batch_size < 1 or self.eval_interval < 1:
            out.append("epochs ≥ 0, batch_size ≥ 1 and eval_interval ≥ 1 are required")
        if not 0 <= self.alpha <= 1:
            out.append(f"alpha {self.alpha} must be within [0, 1]")
        if self.temperature <= 0 or self.lr <= 0:
            out.append("temperature and lr must be positive")
        return out


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None,
                      alpha: float, temperature: float) -> torch.Tensor:
    t = temperature
    soft = F.kl_div(F.log_softmax(student / t, -1), F.log_softmax(teacher / t, -1), log_target=True,
                    reduction="batchmean") * (t * t)
    if labels is None:
        return soft
    return alpha * soft + (1 - alpha) * F.cross_entropy(student, labels)


@dataclass
class HiddenCapture:
    """Forward hooks that record the outputs of layers matching `patterns` by name."""

    patterns: tuple[str, ...]
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)
    handles: list[Any] = field(default_factory=list)

    def attach(self, model: nn.Module) -> HiddenCapture:
        for name, module in model.named_modules():
            if name and any(fnmatch.fnmatchcase(name, p) for p in self.patterns):
                self.handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def _hook(self, name: str):
        def hook(_module, _args, output):
            tensor = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(tensor, torch.Tensor):
                self.outputs[name] = tensor
        return hook

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def hidden_mse(student: dict[str, torch.Tensor], teacher: dict[str, torch.Tensor]) -> torch.Tensor | None:
    losses = [F.mse_loss(student[k].float(), teacher[k].float()) for k in student
              if k in teacher and student[k].shape == teacher[k].shape]
    return torch.stack(losses).mean() if losses else None
