"""The output layer's own learning rate (`head_lr`): after structured pruning a pretrained CNN's
head must re-learn what the pruned features meant, at a rate the backbone would not survive."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from studio.core.base.errors import StudioError
from studio.core.base.events import Finished
from studio.core.data.sources import open_dataset
from studio.core.pipelines.finetune import (LARGE_CNN, SMALL_NET, TRANSFORMER, FinetuneSettings, output_layer,
                                            param_groups, resolve)
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.pipelines.run import run
from studio.core.plan import CompressionPlan


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10))


def test_param_groups_give_the_output_layer_its_own_scale():
    net = _net()
    assert output_layer(net) is net[5]
    groups = param_groups(net, 0.01, head_lr=10.0)
    head = {id(p) for g in groups if g["lr_scale"] == 10.0 for p in g["params"]}
    assert head == {id(net[5].weight), id(net[5].bias)}
    assert [g["weight_decay"] for g in groups if g["lr_scale"] == 10.0] == [0.01, 0.0]  # the bias is not decayed
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    assert {g["lr_scale"] for g in param_groups(net, 0.01)} == {1.0}  # no split at 1


def test_head_lr_is_checked_resolved_and_described():
    with pytest.raises(StudioError, match=r"head_lr must be a finite number in \(0, 1000\]"):
        FinetuneSettings.from_dict({"head_lr": 0})
    assert FinetuneSettings.from_dict({"head_lr": 5}).head_lr == 5.0
    assert (SMALL_NET.head_lr, TRANSFORMER.head_lr) == (1.0, 1.0)
    big = nn.Sequential(nn.Conv2d(3, 1024, 3), nn.BatchNorm2d(1024), nn.Conv2d(1024, 1024, 1))
    auto = resolve(FinetuneSettings(), big, 10)
    assert auto.head_lr == LARGE_CNN.head_lr
    mine = resolve(FinetuneSettings(head_lr=3.0), big, 10)
    assert mine.head_lr == 3.0 and "head_lr from the settings" in mine.why and "output layer at 3× lr" in mine.describe()


def test_the_loop_sets_each_group_s_scaled_rate(monkeypatch):
    """Every step sets the head's groups to head_lr × the scheduled lr, the rest to the lr itself."""
    from studio.core.pipelines import finetune_loop

    made = []
    real = finetune_loop.adamw
    monkeypatch.setattr(finetune_loop, "adamw", lambda groups, lr: made.append(real(groups, lr)) or made[-1])
    loaded = load_model(LoadRequest("sample:digits-cnn"))
    data = open_dataset("digits", loaded)
    plan = CompressionPlan.from_dict({"rules": [{"layers": "*", "prune": {"mode": "unstructured", "amount": 0.1}}]})
    settings = FinetuneSettings(epochs=1, max_steps=3, lr=1e-4, head_lr=20.0, schedule="constant", warmup=0.0,
                                patience=0, eval_interval=3, recalibrate_bn=False)
    events = list(run(loaded, plan, data, settings))
    assert isinstance(events[-1], Finished) and len(made) == 1
    lrs = {g["lr_scale"]: g["lr"] for g in made[0].param_groups}
    assert lrs == {1.0: pytest.approx(1e-4), 20.0: pytest.approx(2e-3)}
    assert events[-1].result.report.to_dict()["finetune"]["resolved"]["head_lr"] == 20.0
