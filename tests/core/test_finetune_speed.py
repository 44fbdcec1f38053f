"""The fine-tuning defaults that make a transformer epoch cheaper: attention-probability dropout
off while training (SDPA keeps its fused kernel), restored afterwards; two evaluations per epoch."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from studio.core.base.cancel import CancelToken
from studio.core.base.errors import StudioError
from studio.core.pipelines import finetune_loop
from studio.core.pipelines.evaluate import EVAL_BATCH, iter_predict, metrics_from
from studio.core.pipelines.finetune import FinetuneSettings, resolve
from studio.core.pipelines.finetune_dropout import attention_dropout, attention_rates
from tests.core.test_dynamic_padding import BertClassifier, text_dataset


def _dropouts(model: nn.Module) -> dict[str, float]:
    return {name: m.p for name, m in model.named_modules() if isinstance(m, nn.Dropout)}


def test_only_attention_probability_dropout_is_switched_and_restored():
    model = BertClassifier()
    before = _dropouts(model)
    assert [(type(m).__name__, name, rate) for m, name, rate in attention_rates(model)] == \
        [("BertSelfAttention", "dropout", 0.1)] * 2
    with attention_dropout(model, 0.0) as changed:
        assert changed == 2
        during = _dropouts(model)
    assert {k for k, v in during.items() if v != before[k]} == {f"bert.encoder.layer.{i}.attention.self.dropout"
                                                                 for i in range(2)}
    assert _dropouts(model) == before
    with attention_dropout(model, None) as changed:  # None: the model's own rates
        assert changed == 0 and _dropouts(model) == before
    mha = nn.MultiheadAttention(8, 2, dropout=0.2)
    with attention_dropout(mha, 0.05):
        assert mha.dropout == 0.05
    assert mha.dropout == 0.2


def test_auto_turns_attention_dropout_off_for_transformers_only():
    bert = resolve(FinetuneSettings(epochs=1), BertClassifier(), 100)
    assert bert.attention_dropout == 0.0 and "attention dropout off" in bert.describe()
    small = resolve(FinetuneSettings(epochs=1), nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)), 100)
    assert small.attention_dropout is None and "attention" not in small.describe()
    mine = resolve(FinetuneSettings.from_dict({"epochs": 1, "attention_dropout": 0.1}), BertClassifier(), 100)
    assert mine.attention_dropout == 0.1 and "attention dropout 0.1" in mine.describe()
    assert mine.why.startswith("attention_dropout from the settings")
    for bad in (1.0, -0.1, "off", True):
        with pytest.raises(StudioError, match="attention_dropout must be a finite number in"):
            FinetuneSettings.from_dict({"attention_dropout": bad})


@pytest.mark.parametrize("epochs, total, interval", [(1, 100, 50), (1, 7, 4), (2, 100, 25), (5, 100, 25)])
def test_auto_evaluates_twice_per_epoch_and_at_most_four_times(epochs, total, interval):
    assert resolve(FinetuneSettings(epochs=epochs), BertClassifier(), total).eval_interval == interval
    assert resolve(FinetuneSettings(epochs=epochs, eval_interval=3), BertClassifier(), total).eval_interval == 3


@pytest.mark.parametrize("setting, expected", [("auto", 0.0), (0.1, 0.1)])
def test_fine_tuning_trains_with_the_chosen_attention_dropout(monkeypatch, setting, expected):
    teacher, data = BertClassifier(), text_dataset()
    student = copy.deepcopy(teacher)
    seen: list[float] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, dropout_p=0.0, **kwargs):
        if torch.is_grad_enabled():  # the student's training forward (teacher and evaluations: no_grad)
            seen.append(dropout_p)
        return sdpa(*args, dropout_p=dropout_p, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    reference = list(iter_predict(teacher, data, "val", EVAL_BATCH))
    start = metrics_from(reference, data, reference=reference)
    settings = FinetuneSettings(epochs=1, batch_size=16, attention_dropout=setting, patience=0)
    gen = finetune_loop.finetune(teacher.eval(), student, data, settings, reference, start, [], CancelToken(),
                                 torch.device("cpu"))
    events = []
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        outcome = stop.value
    assert seen and set(seen) == {expected}, seen  # every training forward (4 steps × 2 layers)
    assert outcome.resolved.attention_dropout == expected and outcome.steps == 4
    assert [rate for _, _, rate in attention_rates(student)] == [0.1, 0.1]  # the model's own rates are back
    evaluations = [e for e in events if getattr(e, "name", "") == "train/lr"]
    assert len(evaluations) == 2  # auto: every half epoch
