"""Fine-tuning is never silently worse: best checkpoint, early stopping, divergence back-off or
a clear error, the starting weights kept when nothing beats them; settings validation."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from studio.core.pipelines import finetune_loop
from studio.core.data.sources import open_dataset
from studio.core.base.errors import StudioError
from studio.core.pipelines.evaluate import Metrics, iter_predict
from studio.core.base.events import Finished, Metric, Warning
from studio.core.pipelines.finetune import (LARGE_CNN, SMALL_NET, TRANSFORMER, FinetuneSettings, lr_factor, model_family,
                                  resolve)
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.plan import CompressionPlan
from studio.core.pipelines.run import run

PLAN = CompressionPlan.from_dict({"rules": [{"layers": "*", "prune": {"mode": "unstructured", "amount": 0.8}}]})


@pytest.fixture(scope="module")
def digits():
    loaded = load_model(LoadRequest("sample:digits-cnn"))
    return loaded, open_dataset("digits", loaded)


def _finish(events):
    assert isinstance(events[-1], Finished), events[-1]
    return events[-1].result


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_diverging_loss_backs_off_from_the_last_good_weights(digits):
    """lr 1.0 explodes at once: the run goes back, lowers the rate, and still ends finite and no worse."""
    loaded, data = digits
    events = list(run(loaded, PLAN, data, FinetuneSettings(epochs=1, lr=1.0, max_steps=30, eval_interval=10)))
    report = _finish(events).report.to_dict()
    warnings = [e.message for e in events if isinstance(e, Warning) and "diverged" in e.message]
    assert report["finetune"]["backoffs"] == len(warnings) >= 1
    assert report["finetune"]["final_lr"] == pytest.approx(0.1 ** len(warnings))
    model = _finish(events).model
    assert all(torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point())
    assert report["after"]["accuracy"] >= report["finetune"]["start"]["accuracy"]
    assert math.isfinite(report["after"]["loss"])


def test_endless_divergence_stops_with_a_clear_error_and_no_result(digits, monkeypatch):
    loaded, data = digits
    original = _weights(loaded.module)
    monkeypatch.setattr(finetune_loop, "distillation_loss", lambda s, *_: (s * float("nan")).sum())
    events = []
    with pytest.raises(StudioError, match=r"diverged at step 1 \(the loss became nan\).*3 times"):
        for event in run(loaded, PLAN, data, FinetuneSettings(epochs=1, max_steps=20)):
            events.append(event)
    assert not any(isinstance(e, Finished) for e in events)
    assert sum(isinstance(e, Warning) and "diverged" in e.message for e in events) == 3
    assert all(torch.equal(original[k], v) for k, v in loaded.module.state_dict().items())


def test_a_worse_model_is_never_kept(digits, monkeypatch):
    """Gradient ascent on the labels makes every step worse: the starting weights come back, and the
    result says so."""
    loaded, data = digits
    start = _finish(list(run(loaded, PLAN, data, FinetuneSettings(epochs=0))))
    monkeypatch.setattr(finetune_loop, "distillation_loss", lambda s, t, y, a, T: -F.cross_entropy(s, y))
    events = list(run(loaded, PLAN, data, FinetuneSettings(epochs=1, lr=1e-3, max_steps=20, eval_interval=5,
                                                           patience=0)))
    result = _finish(events)
    accuracies = [e.value for e in events if isinstance(e, Metric) and e.name == "val/accuracy" and e.step > 0]
    assert accuracies[:-1] and max(accuracies[:-1]) < start.report.to_dict()["after"]["accuracy"]  # every evaluation was worse
    assert accuracies[-1] == start.report.to_dict()["after"]["accuracy"]  # the charts end on the kept (starting) weights
    assert result.report.to_dict()["finetune"]["kept"] == "start" and not result.report.to_dict()["finetune"]["improved"]
    assert result.report.to_dict()["after"]["accuracy"] == start.report.to_dict()["after"]["accuracy"]
    assert any(isinstance(e, Warning) and "never beat the starting accuracy" in e.message for e in events)
    kept, before = result.model.state_dict(), start.model.state_dict()
    assert all(torch.equal(kept[k], before[k]) for k in before)


def _scripted(monkeypatch, accuracies):
    """Validation metrics follow a script; the outputs each evaluation saw are recorded (kept for
    the test only: fine-tuning itself scores them batch by batch)."""
    seen, real = [], finetune_loop.validation_metrics
    script = iter(accuracies)

    def fake(model, dataset, cancel, label, *args, **kwargs):
        metrics, outputs = yield from real(model, dataset, cancel, label, *args, **{**kwargs, "keep": True})
        seen.append([o.clone() for o in outputs])
        scripted = Metrics(metrics.samples, loss=1.0, accuracy=next(script), agreement=metrics.agreement, kl=metrics.kl)
        return scripted, (outputs if kwargs.get("keep") else None)

    monkeypatch.setattr(finetune_loop, "validation_metrics", fake)
    return seen


def test_best_checkpoint_is_the_one_kept(digits, monkeypatch):
    loaded, data = digits
    start = _finish(list(run(loaded, PLAN, data, FinetuneSettings(epochs=0)))).report.to_dict()["after"]["accuracy"]
    seen = _scripted(monkeypatch, [start + 0.01, start + 0.05, start + 0.02, start + 0.03])
    events = list(run(loaded, PLAN, data, FinetuneSettings(epochs=1, max_steps=40, eval_interval=10, patience=0)))
    result = _finish(events)
    assert result.report.to_dict()["finetune"]["best_step"] == 20 and result.report.to_dict()["finetune"]["kept"] == "best"
    assert result.report.to_dict()["after"]["accuracy"] == pytest.approx(start + 0.05)
    best = [(e.step, e.value) for e in events if isinstance(e, Metric) and e.name == "best/accuracy"]
    assert best == [(10, pytest.approx(start + 0.01)), (20, pytest.approx(start + 0.05))]  # the charts' marks
    final = list(iter_predict(result.model, data))  # the kept weights are exactly those evaluated at step 20
    # On a GPU the evaluation ran under bf16 autocast while iter_predict runs in fp32 on the CPU.
    tolerance = {"rtol": 0.05, "atol": 0.05} if torch.cuda.is_available() else {"atol": 1e-6}
    assert all(torch.allclose(a, b, **tolerance) for a, b in zip(final, seen[1]))


def test_early_stop_after_patience_evaluations_without_improvement(digits, monkeypatch):
    loaded, data = digits
    _scripted(monkeypatch, [0.995, 0.99, 0.99, 0.99, 0.99, 0.99])
    report = _finish(list(run(loaded, PLAN, data, FinetuneSettings(epochs=2, eval_interval=5, patience=2)))).report.to_dict()
    assert report["finetune"]["stopped"] == "early stop"
    assert report["finetune"]["steps"] == 15 and report["finetune"]["best_step"] == 5


def test_auto_settings_follow_the_model(digits):
    from transformers import BertModel

    from tests.zoo import tiny_bert_config

    loaded, _ = digits
    assert model_family(loaded.module) is SMALL_NET
    assert model_family(BertModel(tiny_bert_config())) is TRANSFORMER
    assert model_family(torch.nn.Sequential(torch.nn.Conv2d(3, 512, 3), torch.nn.Conv2d(512, 512, 3))) is LARGE_CNN
    bert = resolve(FinetuneSettings(epochs=1), BertModel(tiny_bert_config()), 100)
    assert (bert.lr, bert.schedule, bert.warmup_steps, bert.weight_decay, bert.grad_clip) == (3e-5, "linear", 10, 0.01, 1.0)
    assert "pretrained transformer" in bert.why and bert.eval_interval == 50  # 1 epoch: twice
    mine = resolve(FinetuneSettings(epochs=1, lr=2e-5, eval_interval=7), BertModel(tiny_bert_config()), 100)
    assert mine.lr == 2e-5 and mine.eval_interval == 7 and mine.why.startswith("lr from the settings")
    factors = [lr_factor(s, bert) for s in range(100)]
    assert factors[0] == pytest.approx(1 / 11) and max(factors) == pytest.approx(1.0) == factors[10]
    assert factors[-1] == pytest.approx(1 / 90) and all(a >= b for a, b in zip(factors[10:], factors[11:]))


@pytest.mark.parametrize("key, value, sentence", [
    ("temperature", float("nan"), "temperature must be a finite number in (0, 100]"),
    ("lr", float("inf"), "lr must be a finite number in (0, 1]"),
    ("lr", 0, "lr must be a finite number"),
    ("lr", "fast", "lr must be a finite number"),
    ("hidden_weight", float("nan"), "hidden_weight must be a finite number"),
    ("hidden", "classifier.*", 'hidden must be a list of layer-name patterns, e.g. ["classifier.*"]'),
    ("hidden", [3], "hidden must be a list of non-empty layer-name patterns"),
    ("epochs", 1.5, "epochs must be a whole number ≥ 0"),
    ("epochs", True, "epochs must be a whole number"),
    ("epochs", "2", "epochs must be a whole number"),
    ("batch_size", 0, "batch_size must be a whole number ≥ 1"),
    ("alpha", 2, "alpha must be a finite number in [0, 1]"),
    ("distill", "yes", "distill must be true or false"),
    ("schedule", "steep", "schedule must be one of auto, linear, cosine, constant"),
    ("warmup", -0.1, "warmup must be a finite number in [0, 0.9]"),
    ("weight_decay", float("nan"), "weight_decay must be a finite number"),
    ("grad_clip", -1, "grad_clip must be a finite number"),
    ("patience", -1, "patience must be a whole number ≥ 0"),
    ("eval_interval", 0, "eval_interval must be a whole number ≥ 1"),
    ("max_steps", 2.5, "max_steps must be a whole number ≥ 1"),
])
def test_settings_refuse_bad_values_in_one_sentence(key, value, sentence):
    with pytest.raises(StudioError) as info:
        FinetuneSettings.from_dict({key: value})
    message = str(info.value)
    assert sentence in message and message.count(".") >= 1 and "\n" not in message


def test_settings_list_every_problem_and_accept_good_values():
    with pytest.raises(StudioError) as info:
        FinetuneSettings.from_dict({"lr": float("inf"), "temperature": float("nan"), "epochs": 1.5})
    assert all(k in str(info.value) for k in ("lr must", "temperature must", "epochs must"))
    assert FinetuneSettings(lr=float("nan")).problems() == [
        "lr must be a finite number in (0, 1] (AdamW learning rate, or \"auto\"), not nan."]
    with pytest.raises(StudioError, match="unknown key"):
        FinetuneSettings.from_dict({"epochz": 1})
    with pytest.raises(StudioError, match="mapping"):
        FinetuneSettings.from_dict(["epochs", 1])  # type: ignore[arg-type]
    s = FinetuneSettings.from_dict({"epochs": 2.0, "lr": 3e-5, "hidden": ["bert.encoder.layer.*"], "warmup": 0.06,
                                    "schedule": "cosine", "weight_decay": 0.01, "patience": 0, "eval_interval": "auto"})
    assert s.epochs == 2 and isinstance(s.epochs, int) and s.hidden == ("bert.encoder.layer.*",)
    assert FinetuneSettings.from_dict(s.to_dict()) == s
    assert FinetuneSettings.from_dict(FinetuneSettings().to_dict()) == FinetuneSettings()
    with pytest.raises(StudioError, match="temperature"):
        list(run(None, PLAN, None, FinetuneSettings(temperature=float("nan"))))  # type: ignore[arg-type]
