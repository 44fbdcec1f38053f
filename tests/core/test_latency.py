"""Before/after latency is compared honestly: noise is "same speed", a real gap is measured."""

from __future__ import annotations

import torch
from torch import nn

from studio.core.pipelines.latency import compare_latency
from studio.core.base.units import speed_text


def _mlp(width: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, width), nn.ReLU(), nn.Linear(width, 256))


def test_identical_models_are_the_same_speed():
    model = _mlp(256)
    example = ((torch.randn(1, 256),), {})
    timing = compare_latency(model, model, example, runs=15)  # 0.1 ms passes: more pairs than 15 are timed
    assert timing.runs > 15 and timing.same_speed and speed_text(timing.to_dict()) == "same speed"
    assert timing.speedup_low <= timing.speedup <= timing.speedup_high


def test_a_much_smaller_model_is_faster():
    big, small = _mlp(4096), _mlp(16)
    example = ((torch.randn(64, 256),), {})
    timing = compare_latency(big, small, example, runs=15)
    assert not timing.same_speed and timing.speedup > 2 and timing.speedup_low > 1
    assert speed_text(timing.to_dict()).endswith("× faster")
    assert timing.before_ms > timing.after_ms


def test_speed_text_wording():
    assert speed_text(None) == ""
    assert speed_text({"same_speed": False, "speedup": 0.5}) == "2.0× slower"
