"""Compression runs: events, cancel in every stage, untouched original, and distillation
fine-tuning measurably recovering accuracy on the digits sample."""

from __future__ import annotations

import pytest
import torch

from studio.core.base.cancel import CancelToken
from studio.core.data.sources import open_dataset
from studio.core.base.errors import StudioError
from studio.core.base.events import Finished, LayerDone, Metric, Progress, RunCancelled, StageStarted
from studio.core.pipelines.finetune import FinetuneSettings, distillation_loss
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.plan import CompressionPlan
from studio.core.pipelines.run import run

AGGRESSIVE = CompressionPlan.from_dict({"rules": [{"layers": "*", "prune": {"mode": "unstructured", "amount": 0.9}}]})


@pytest.fixture(scope="module")
def digits():
    loaded = load_model(LoadRequest("sample:digits-cnn"))
    return loaded, open_dataset("digits", loaded)


def _final(events):
    assert isinstance(events[-1], Finished)
    return events[-1].result


def test_events_in_order_and_report(digits):
    loaded, data = digits
    before = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    events = list(run(loaded, AGGRESSIVE, data, FinetuneSettings(epochs=1, eval_interval=20)))
    stages = [e.name for e in events if isinstance(e, StageStarted)]
    assert stages == ["validate", "apply", "measure", "evaluate", "finetune", "latency"]
    steps = [e.step for e in events if isinstance(e, Progress) and e.message.startswith("epoch")]
    assert steps == list(range(1, data.steps("train", 32) + 1))
    losses = [e for e in events if isinstance(e, Metric) and e.name == "train/loss"]
    assert len(losses) == len(steps)
    assert {e.step for e in events if isinstance(e, Metric) and e.name == "val/accuracy"} >= {0, 20, 40, len(steps)}
    report = _final(events).report.to_dict()
    assert report["before"]["accuracy"] == pytest.approx(0.9911, abs=1e-3)
    assert {"accuracy", "loss", "latency_ms"} <= report["after"].keys()
    assert report["settings"]["finetune"]["epochs"] == 1 and report["data"] == "digits"
    assert report["history"][0] == {"step": 0, "name": "val/loss", "value": pytest.approx(report["history"][0]["value"])}
    # zeros made by pruning stay zero through fine-tuning
    pruned = sum(round(0.9 * m.weight.numel()) for m in loaded.module.modules()
                 if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)))
    assert report["after"]["nonzero_params"] == report["before"]["params"] - pruned
    after = loaded.module.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the original is bit-identical


def test_distillation_recovers_accuracy(digits):
    loaded, data = digits
    none = _final(list(run(loaded, AGGRESSIVE, data, FinetuneSettings(epochs=0)))).report.to_dict()["after"]["accuracy"]
    kd = _final(list(run(loaded, AGGRESSIVE, data, FinetuneSettings(epochs=3, distill=True)))).report.to_dict()["after"]["accuracy"]
    assert none < 0.3  # 90% of weights gone: the model is broken without fine-tuning
    assert kd > none + 0.4  # measured: ~0.10 → ~0.86


def test_runs_are_deterministic(digits):
    loaded, data = digits
    settings = FinetuneSettings(epochs=1, max_steps=10)
    a = _final(list(run(loaded, AGGRESSIVE, data, settings))).report.to_dict()["history"]
    b = _final(list(run(loaded, AGGRESSIVE, data, settings))).report.to_dict()["history"]
    assert a == b


@pytest.mark.parametrize("stage", ["apply", "measure", "evaluate", "finetune", "step"])
def test_cancel_in_every_stage(digits, stage):
    loaded, data = digits
    before = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    token = CancelToken()
    events = []
    for event in run(loaded, AGGRESSIVE, data, FinetuneSettings(epochs=2), cancel=token):
        events.append(event)
        if (isinstance(event, StageStarted) and event.name == stage) or \
                (stage == "step" and isinstance(event, Progress) and event.message.startswith("epoch") and event.step == 5):
            token.cancel()
    assert isinstance(events[-1], RunCancelled)
    assert "original model is unchanged" in events[-1].detail
    assert not any(isinstance(e, Finished) for e in events)
    assert all(torch.equal(before[k], v) for k, v in loaded.module.state_dict().items())
    if stage == "step":
        assert "after 5 fine-tuning steps" in events[-1].detail


def test_cancel_mid_evaluation_stops_within_a_batch(digits):
    """Evaluating a transformer on CPU takes minutes: cancel must not wait for the whole pass."""
    loaded, data = digits
    token = CancelToken()
    events = []
    for event in run(loaded, AGGRESSIVE, data, FinetuneSettings(epochs=0), cancel=token):
        events.append(event)
        if isinstance(event, Progress) and event.message.startswith("evaluating") and event.step == 1:
            token.cancel()
    evaluating = [e for e in events if isinstance(e, Progress) and e.message.startswith("evaluating")]
    assert data.steps("val", 64) > 2 and len(evaluating) == 1
    assert evaluating[0].message == "evaluating the original model" and evaluating[0].total == data.steps("val", 64)
    assert isinstance(events[-1], RunCancelled) and events[-1].stage == "evaluate"


def test_unlabeled_data_reports_fidelity_only(digits):
    loaded, _ = digits
    data = open_dataset("random", loaded)
    assert not data.labeled
    report = _final(list(run(loaded, AGGRESSIVE, data, FinetuneSettings(epochs=1)))).report.to_dict()
    assert "accuracy" not in report["after"] and report["fidelity"]["kl"] is not None
    with pytest.raises(StudioError, match="no labels"):
        list(run(loaded, AGGRESSIVE, data, FinetuneSettings(epochs=1, distill=False)))


def test_distillation_loss_matches_definition():
    torch.manual_seed(0)
    s, t, y = torch.randn(4, 3), torch.randn(4, 3), torch.tensor([0, 1, 2, 0])
    T = 2.0
    p = torch.softmax(t / T, -1)
    kl = (p * (p.log() - torch.log_softmax(s / T, -1))).sum(-1).mean() * T * T
    expected = 0.7 * kl + 0.3 * torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(distillation_loss(s, t, y, 0.7, T), expected, atol=1e-6)
    assert torch.allclose(distillation_loss(t, t, None, 0.7, T), torch.tensor(0.0), atol=1e-6)


def test_settings_validation():
    with pytest.raises(StudioError, match="unknown key"):
        FinetuneSettings.from_dict({"epochz": 1})
    with pytest.raises(StudioError, match="alpha"):
        FinetuneSettings.from_dict({"alpha": 2})
    s = FinetuneSettings.from_dict({"epochs": 2, "hidden": ["bert.encoder.layer.*"]})
    assert FinetuneSettings.from_dict(s.to_dict()) == s
