"""BatchNorm re-estimation after compression: the running statistics equal an independent
computation over the calibration data, the original is never touched, dropout stays off, a
pruned CNN gets its accuracy back, and a run does it (and keeps it only when it helps)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from studio.core.base.events import Finished, Note
from studio.core.data.sources import open_dataset
from studio.core.pipelines.bn_recalibration import batchnorms, freeze_batchnorm, recalibrate_batchnorm
from studio.core.pipelines.evaluate import iter_predict
from studio.core.pipelines.finetune import FinetuneSettings
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.plan import CompressionPlan
from studio.core.pipelines.run import run

STRUCTURED = CompressionPlan.from_dict({"rules": [{"layers": "features.[01].0", "prune": {"mode": "structured",
                                                                                    "amount": 0.5}}]})


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
                         nn.Conv2d(8, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)).eval()


def _batches(n: int = 5, size: int = 16):
    g = torch.Generator().manual_seed(1)
    return [((torch.randn(size, 3, 6, 6, generator=g) * 3 + 1,), {}) for _ in range(n)]


def test_running_statistics_equal_the_data_statistics():
    """Reference: each BatchNorm's input over all calibration batches, computed layer by layer
    by hand (earlier layers normalised with their batch statistics, dropout off)."""
    model, batches = _net(), _batches()
    list(recalibrate_batchnorm(model, batches))
    conv1, bn1, conv2, bn2 = model[0], model[1], model[4], model[5]
    first, second = [], []
    with torch.no_grad():
        for (x,), _ in batches:
            h = conv1(x)
            first.append(h)
            mean, var = h.mean((0, 2, 3), keepdim=True), h.var((0, 2, 3), unbiased=False, keepdim=True)
            h = torch.relu((h - mean) / torch.sqrt(var + bn1.eps) * bn1.weight.view(1, -1, 1, 1)
                           + bn1.bias.view(1, -1, 1, 1))
            second.append(conv2(h))
    for bn, inputs in ((bn1, first), (bn2, second)):
        means = torch.stack([h.mean((0, 2, 3)) for h in inputs]).mean(0)
        variances = torch.stack([h.var((0, 2, 3), unbiased=True) for h in inputs]).mean(0)
        torch.testing.assert_close(bn.running_mean, means, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bn.running_var, variances, rtol=1e-5, atol=1e-5)
        assert bn.momentum == 0.1 and not bn.training  # momentum and eval mode as they were
    assert not model.training


def test_no_usable_batch_keeps_the_old_statistics():
    model = _net()
    before = copy.deepcopy(model.state_dict())
    assert list(recalibrate_batchnorm(model, [((torch.randn(1, 3, 6, 6),), {})])) == []
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_freeze_keeps_statistics_while_training():
    model = _net().train()
    assert freeze_batchnorm(model) == 2 == len(batchnorms(model))
    before = model[1].running_mean.clone()
    model(torch.randn(8, 3, 6, 6)).sum().backward()
    assert torch.equal(model[1].running_mean, before) and model[3].training  # dropout still trains
    assert model[1].weight.grad is not None


@pytest.fixture(scope="module")
def digits():
    loaded = load_model(LoadRequest("sample:digits-cnn"))
    return loaded, open_dataset("digits", loaded)


def _accuracy(model, data) -> float:
    logits = torch.cat(list(iter_predict(model, data, "val", 64)))
    return float((logits.argmax(1) == data.labels[data.val_idx]).float().mean())


def test_pruned_cnn_gets_accuracy_back_and_the_run_keeps_it(digits):
    loaded, data = digits
    original = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    events = list(run(loaded, STRUCTURED, data, FinetuneSettings(epochs=0)))
    result = events[-1].result
    assert isinstance(events[-1], Finished)
    pruned = result.compression.compressed
    recalibrated = copy.deepcopy(pruned)
    list(recalibrate_batchnorm(recalibrated, ((a, k) for a, k, _ in data.batches("train", 32))))
    before, after = _accuracy(pruned, data), _accuracy(recalibrated, data)
    assert after > before + 0.02, (before, after)  # measured: 85.1 % → 89.1 %
    notes = [e.message for e in events if isinstance(e, Note) and "BatchNorm" in e.message]
    assert notes and "re-estimated" in notes[0]
    assert result.report.to_dict()["after"]["accuracy"] == pytest.approx(_accuracy(result.model, data))
    assert result.report.to_dict()["after"]["accuracy"] >= before
    assert all(torch.equal(original[k], v) for k, v in loaded.module.state_dict().items())  # original untouched


@pytest.mark.parametrize("mode", ["frozen", "train"])
def test_frozen_batchnorm_keeps_its_statistics_while_fine_tuning(digits, mode):
    loaded, data = digits
    settings = FinetuneSettings(epochs=1, max_steps=4, eval_interval=2, patience=0, recalibrate_bn=False,
                                batchnorm=mode, lr=1e-3)
    result = _finish(list(run(loaded, STRUCTURED, data, settings)))
    start = dict(result.compression.compressed.named_buffers())
    moved = [name for name, value in result.model.named_buffers() if name.endswith("running_mean")
             and not torch.equal(value, start[name])]
    assert result.report.to_dict()["finetune"]["resolved"]["batchnorm"] == mode
    assert (moved == []) if mode == "frozen" else moved


def _finish(events):
    assert isinstance(events[-1], Finished), events[-1]
    return events[-1].result


def test_batchnorm_settings_are_checked_and_auto_resolves_per_family():
    from studio.core.base.errors import StudioError
    from studio.core.pipelines.finetune import LARGE_CNN, SMALL_NET, TRANSFORMER, resolve

    with pytest.raises(StudioError, match="batchnorm must be one of auto, train, frozen"):
        FinetuneSettings.from_dict({"batchnorm": "off"})
    with pytest.raises(StudioError, match='recalibrate_bn must be true, false or "auto"'):
        FinetuneSettings.from_dict({"recalibrate_bn": "yes"})
    assert (LARGE_CNN.batchnorm, SMALL_NET.batchnorm, TRANSFORMER.batchnorm) == ("frozen", "train", "train")
    big = nn.Sequential(nn.Conv2d(3, 1024, 3), nn.BatchNorm2d(1024), nn.Conv2d(1024, 1024, 1))
    assert resolve(FinetuneSettings(), big, 10).batchnorm == "frozen"
    assert resolve(FinetuneSettings(batchnorm="train"), big, 10).batchnorm == "train"
