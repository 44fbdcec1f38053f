"""The training loss runs the teacher only when a term needs it (labels-only fine-tuning of a
pruned transformer on CPU spent most of each step in a forward pass nothing used)."""

from __future__ import annotations

import torch
from torch import nn

from studio.core.pipelines.finetune import FinetuneSettings
from studio.core.pipelines.finetune_loop import TrainingLoss


class _Counting(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.fc(x)


def _loss(settings: FinetuneSettings) -> tuple[float, int]:
    torch.manual_seed(0)
    teacher, student = _Counting(), _Counting()
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    value = TrainingLoss(teacher, student, settings, torch.device("cpu"))(((x,), {}, y))
    expected = nn.functional.cross_entropy(student.fc(x), y) if not settings.distill else None
    if expected is not None:
        assert torch.allclose(value, expected)
    return float(value), teacher.calls


def test_labels_only_loss_never_runs_the_teacher():
    _, calls = _loss(FinetuneSettings(distill=False))
    assert calls == 0


def test_distillation_runs_the_teacher_once_per_step():
    _, calls = _loss(FinetuneSettings(distill=True, alpha=0.5))
    assert calls == 1
