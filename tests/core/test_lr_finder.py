"""The learning-rate range test: exponentially growing rates, a smoothed loss curve, a
suggestion a decade below the minimum, cancel, and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch

from studio.cli.main import main
from studio.core.base.cancel import CancelToken
from studio.core.data.sources import open_dataset
from studio.core.base.errors import StudioError
from studio.core.base.events import Finished, LrProbe, RunCancelled
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.pipelines.lr_finder import LrFinderResult, find_lr, suggest
from studio.core.plan import CompressionPlan

PLAN = CompressionPlan.from_dict({"rules": [{"layers": "*", "prune": {"mode": "unstructured", "amount": 0.8}}]})


@pytest.fixture(scope="module")
def digits():
    loaded = load_model(LoadRequest("sample:digits-cnn"))
    return loaded, open_dataset("digits", loaded)


def test_range_test_on_digits(digits):
    loaded, data = digits
    before = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    events = list(find_lr(loaded, PLAN, data, start_lr=1e-5, end_lr=10.0, steps=60))
    probes = [e for e in events if isinstance(e, LrProbe)]
    result = events[-1].result
    assert isinstance(result, LrFinderResult)
    assert len(probes) == len(result.lrs) <= 60 and probes[0].lr == pytest.approx(1e-5)
    ratios = [b / a for a, b in zip(result.lrs, result.lrs[1:])]
    assert all(r == pytest.approx((10.0 / 1e-5) ** (1 / 59)) for r in ratios)  # exponential steps
    assert result.suggested is not None and 1e-5 < result.suggested < result.lr_at_min <= 10.0
    assert result.suggested == pytest.approx(result.lr_at_min / 10)
    assert result.family == "small network" and result.default_lr == 1e-3
    assert LrFinderResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
    assert all(torch.equal(before[k], v) for k, v in loaded.module.state_dict().items())


def test_suggestion_reads_the_curve():
    lrs = [10 ** (-6 + i / 4) for i in range(25)]
    curve = [2.0 - 1.5 * math.exp(-((i - 16) / 5) ** 2) if i <= 16 else 0.5 + (i - 16) ** 2 for i in range(25)]
    suggested, at_min, reason = suggest(lrs, curve)
    assert at_min == pytest.approx(lrs[16]) and suggested == pytest.approx(lrs[16] / 10) and "lowest" in reason
    assert suggest(lrs, sorted(curve))[0] is None  # never fell: no suggestion
    assert suggest(lrs[:2], curve[:2])[0] is None


def test_cancel_and_bad_ranges(digits):
    loaded, data = digits
    token, events = CancelToken(), []
    for event in find_lr(loaded, PLAN, data, cancel=token, steps=50):
        events.append(event)
        if isinstance(event, LrProbe) and event.step == 3:
            token.cancel()
    assert isinstance(events[-1], RunCancelled) and not any(isinstance(e, Finished) for e in events)
    with pytest.raises(StudioError, match="0 < start < end"):
        list(find_lr(loaded, PLAN, data, start_lr=1.0, end_lr=1e-3))
    with pytest.raises(StudioError, match="at least 10 steps"):
        list(find_lr(loaded, PLAN, data, steps=3))


def test_cli_find_lr(capsys):
    assert main(["find-lr", "sample:digits-cnn", "--data", "digits", "--steps", "30", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["lrs"]) <= 30 and out["family"] == "small network"
    assert main(["find-lr", "sample:digits-cnn", "--data", "digits", "--steps", "2"]) == 2
    assert "at least 10 steps" in capsys.readouterr().err
