"""Sensitivity sweep: the fast path (layer swapped in, upstream outputs replayed) gives the
naive loop's numbers (one-rule plan → editable copy → apply → full evaluation) on several
architectures, fallbacks included; events, errors and the result's round trip."""

from __future__ import annotations

import json
import math

import pytest
import torch

from studio.core.base.errors import StudioError
from studio.core.base.events import Finished, RunCancelled
from studio.core.model.inspection import inspect_model
from studio.core.pipelines.sensitivity import (CellDone, SensitivityCell, SensitivityResult, SweepPlanned, SweepSetting,
                                     SweepSpec, sweep)
from studio.core.pipelines.sensitivity.engine import CellEngine, Scorer, sample_batches
from studio.core.pipelines.sensitivity.naive import naive_value
from studio.core.pipelines.sensitivity.settings import compressible_layers, parse_setting, sweep_settings
from tests.core.sensitivity_helpers import ARCHITECTURES, dataset, loaded_model

SETTINGS = {"prune": ("0.5", "struct 30%"), "lowrank": ("rank 50%",), "quantize": ("int8 w+a", "int4", "fp16")}


def _cosine_engine(loaded, batches, fast: bool) -> CellEngine:
    """Cosine to the original outputs: continuous, so any numeric difference shows."""
    engine = CellEngine(loaded, batches, None, inspect_model(loaded.module, loaded.input_spec), fast)
    engine.scorer = Scorer("cosine", engine.scorer.reference, None)
    engine.baseline = engine.scorer.score(engine.scorer.reference)
    return engine


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_fast_path_equals_naive_loop(arch):
    loaded = loaded_model(arch)
    batches, _ = sample_batches(dataset(loaded, calls=3), 10, batch_size=4)  # 3 batches, the last one short
    settings = sweep_settings(tuple(SETTINGS), SETTINGS)
    layers = compressible_layers(loaded.module, settings, None)
    state = {k: v.clone() for k, v in loaded.module.state_dict().items()}
    engine = _cosine_engine(loaded, batches, fast=True)
    cells = [c for name in layers for c in engine.layer_cells(name, settings)]
    engine.close()
    measured = [c for c in cells if c.ok]
    assert len(measured) >= len(layers)  # most cells apply
    for cell in measured:
        setting = next(s for s in settings if s.label == cell.setting)
        expected = naive_value(loaded.module, batches, engine.scorer, cell.layer, setting, loaded.example_inputs())
        assert cell.value == pytest.approx(expected, abs=1e-5), (cell.layer, cell.setting)
        assert cell.drop == pytest.approx(engine.baseline - expected, abs=1e-5)
    # the original is unchanged: same weights, no hooks or wrappers left, same modules
    after = loaded.module.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)
    assert all("forward" not in m.__dict__ for m in loaded.module.modules())
    from torch.nn.modules import module as torch_module

    assert not torch_module._global_forward_pre_hooks and not torch_module._global_forward_hooks


def test_replay_recomputes_only_downstream_and_falls_back_where_it_must():
    loaded = loaded_model("resnet")
    batches, _ = sample_batches(dataset(loaded, calls=2), 8, batch_size=4)
    settings = (parse_setting("prune", "0.5"),)
    engine = _cosine_engine(loaded, batches, fast=True)
    calls = []
    conv = loaded.module.conv1
    compute = conv._conv_forward
    conv._conv_forward = lambda *a: calls.append(1) or compute(*a)  # counts real convolutions only
    list(engine.layer_cells("fc", settings))
    del conv._conv_forward
    assert len(calls) == 1 + len(batches)  # one call-order trace, one recording per batch; none in the cell
    assert "fc" not in engine.fallbacks
    engine.close()
    encoder = loaded_model("encoder")
    batches, _ = sample_batches(dataset(encoder, calls=2), 8, batch_size=4)
    engine = _cosine_engine(encoder, batches, fast=True)
    list(engine.layer_cells("encoder.linear1", settings))
    assert "encoder.linear1" in engine.fallbacks  # read by the fused kernel, never called: full forwards
    engine.close()


def test_sweep_streams_events_and_reports_inapplicable_cells():
    loaded = loaded_model("mobilenet")
    data = dataset(loaded, calls=2, labels=5)
    spec = SweepSpec(techniques=("prune", "lowrank", "quant"),
                     settings={"prune": ("0.5",), "lowrank": ("0.5",), "quant": ("int8 w+a",)}, samples=8)
    events = list(sweep(loaded, data, spec))
    planned = [e for e in events if isinstance(e, SweepPlanned)]
    done = [e for e in events if isinstance(e, CellDone)]
    assert len(planned) == 1 and events.index(planned[0]) < events.index(done[0])
    result = events[-1].result
    assert isinstance(events[-1], Finished) and isinstance(result, SensitivityResult)
    assert result.metric == "accuracy" and result.samples == 8
    assert len(done) == done[-1].total == len(result.layers) * 3 + len(result.inverse)
    assert [d.done for d in done] == list(range(1, len(done) + 1))
    depthwise = result.cell("dw.0", "rank 50%")
    assert depthwise.error and math.isnan(depthwise.drop)  # low-rank does not apply to grouped convs
    assert result.cell("head", "prune 50%").ok
    assert {c.setting for c in result.inverse} == {"all int8 but this"}


def test_sweep_refuses_bad_input():
    loaded = loaded_model("reused")
    with pytest.raises(StudioError, match="technique"):
        list(sweep(loaded, None, SweepSpec(techniques=("distill",))))
    with pytest.raises(StudioError, match="no layer"):
        list(sweep(loaded, None, SweepSpec(layers="nothing.*")))
    with pytest.raises(StudioError, match="between 0 and 1|below 100"):
        list(sweep(loaded, None, SweepSpec(settings={"prune": ("1.5",)})))


def test_cancel_within_a_cell():
    loaded = loaded_model("bert")
    from studio.core.base.cancel import CancelToken

    token = CancelToken()
    events = []
    for event in sweep(loaded, dataset(loaded), SweepSpec(techniques=("prune",), settings={"prune": ("0.5",)},
                                                          samples=16), token):
        events.append(event)
        if isinstance(event, SweepPlanned):
            token.cancel()
    assert isinstance(events[-1], RunCancelled) and not any(isinstance(e, CellDone) for e in events)


def test_result_round_trip_through_json():
    settings = (SweepSetting("prune", "prune 50%", {"prune": {"mode": "unstructured", "amount": 0.5}}),
                SweepSetting("quantize", "int8", {"quantize": {"dtype": "int8", "activations": None}}))
    cells = (SensitivityCell("a", "prune 50%", 0.02, 0.9, 0, 0, 0, None, 120),
             SensitivityCell("a", "int8", math.nan, math.nan, 0, 0, 0, "quantize does not apply"))
    result = SensitivityResult("m", "accuracy", 0.92, 64, settings, ("a",), cells,
                               (SensitivityCell("a", "all int8 but this", 0.0, 0.92, 0, 0, 0),), all_int8=0.91)
    again = SensitivityResult.from_dict(json.loads(json.dumps(result.to_dict(), allow_nan=False)))
    assert again.to_dict() == result.to_dict()
    assert again.cell("a", "prune 50%") == cells[0] and again.cell("a", "int8").error
    assert math.isnan(again.cell("a", "int8").drop) and again.cell("b", "int8") is None
