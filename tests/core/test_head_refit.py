"""Re-fitting the output layer after compressing (head_refit): a head that no longer reads its
features is fitted anew from the training split, kept only when the validation metric improves,
and never on a model whose last Linear layer is not its output."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from studio.core.base.cancel import CancelToken
from studio.core.base.errors import StudioError
from studio.core.base.events import Finished, Note
from studio.core.data.sources import open_dataset
from studio.core.pipelines.evaluate import iter_predict, metrics_from
from studio.core.pipelines.finetune import FinetuneSettings, recalibrates_bn, refit_head
from studio.core.pipelines.head_refit import head_refit_stage
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.pipelines.run import run
from studio.core.plan import CompressionPlan


@pytest.fixture(scope="module")
def digits():
    loaded = load_model(LoadRequest("sample:digits-cnn"))
    return loaded, open_dataset("digits", loaded)


def _drain(generator):
    events = []
    while True:
        try:
            events.append(next(generator))
        except StopIteration as stop:
            return stop.value, events


def _metrics(model, data, reference=None):
    return metrics_from(list(iter_predict(model, data, "val", 64)), data, reference=reference)


def test_a_scrambled_head_is_refitted_and_kept(digits):
    loaded, data = digits
    original = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    reference = list(iter_predict(loaded.module, data, "val", 64))
    student = copy.deepcopy(loaded.module)
    torch.manual_seed(1)
    student.classifier[-1].reset_parameters()  # the features are intact, their reading is lost
    start = _metrics(student, data, reference)
    (model, metrics, kept, why), events = _drain(head_refit_stage(student, loaded.module, data, FinetuneSettings(),
                                                                   CancelToken(), reference, start))
    target = _metrics(loaded.module, data).accuracy
    assert kept and start.accuracy < 0.5 and metrics.accuracy > target - 0.03, (start.accuracy, metrics.accuracy, target)
    assert metrics.accuracy == pytest.approx(_metrics(model, data).accuracy)  # reported = what is returned
    assert model is not student and not torch.equal(student.classifier[-1].weight, model.classifier[-1].weight)
    assert any(isinstance(e, Note) and "re-fitted" in e.message for e in events)
    assert all(torch.equal(original[k], v) for k, v in loaded.module.state_dict().items())  # original untouched


def test_a_layer_after_the_last_linear_means_no_refit(digits):
    loaded, data = digits
    student = nn.Sequential(copy.deepcopy(loaded.module), nn.LogSoftmax(-1))
    reference = list(iter_predict(loaded.module, data, "val", 64))
    start = _metrics(student, data, reference)
    (model, metrics, kept, why), _ = _drain(head_refit_stage(student, loaded.module, data, FinetuneSettings(),
                                                              CancelToken(), reference, start))
    assert model is student and metrics is start and not kept and "not the model's output" in why


def test_the_run_reports_the_refit_and_auto_follows_the_family(digits):
    loaded, data = digits
    assert refit_head(FinetuneSettings(), loaded.module) is False  # small network: off unless asked
    big = nn.Sequential(nn.Conv2d(3, 1024, 3), nn.BatchNorm2d(1024), nn.Conv2d(1024, 1024, 1))
    assert refit_head(FinetuneSettings(), big) is True and refit_head(FinetuneSettings(refit_head=False), big) is False
    # pretrained CNN: statistics of the pre-training data stay (re-estimated on digits first, Lite0: 96.4 % → 58.0 %)
    assert recalibrates_bn(FinetuneSettings(), big) is False and recalibrates_bn(FinetuneSettings(), loaded.module)
    assert recalibrates_bn(FinetuneSettings(recalibrate_bn=True), big)
    with pytest.raises(StudioError, match='refit_head must be true, false or "auto"'):
        FinetuneSettings.from_dict({"refit_head": "yes"})
    plan = CompressionPlan.from_dict({"rules": [{"layers": "features.[01].0",
                                                 "prune": {"mode": "structured", "amount": 0.5}}]})
    events = list(run(loaded, plan, data, FinetuneSettings(epochs=0, recalibrate_bn=False, refit_head=True)))
    assert isinstance(events[-1], Finished)
    result = events[-1].result
    refit = result.report.to_dict()["settings"]["head_refit"]
    after = result.report.to_dict()["after"]["accuracy"]
    assert after == pytest.approx(_metrics(result.model, data).accuracy)
    assert after == pytest.approx(refit["after"]["accuracy"]) and after >= refit["before"]["accuracy"]
    assert refit["kept"] == ((refit["after"]["accuracy"], -refit["after"]["loss"])
                             > (refit["before"]["accuracy"], -refit["before"]["loss"]))
