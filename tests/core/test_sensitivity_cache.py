"""Sweep cache: a finished sweep reopens without measuring, an interrupted one resumes to the
same table, and changing weights, data or settings measures again."""

from __future__ import annotations

import dataclasses

import torch

from studio.core.base.cancel import CancelToken
from studio.core.base.events import Finished, RunCancelled
from studio.core.model.loaded_model import LoadedModel
from studio.core.pipelines.sensitivity import CellDone, SweepSpec, sweep
from studio.core.pipelines.sensitivity import engine as engine_module
from tests.core.sensitivity_helpers import dataset, loaded_model

SPEC = SweepSpec(techniques=("prune", "quant"), settings={"prune": ("0.3", "0.6"), "quant": ("int8 w+a", "int4")},
                 samples=12)


def _run(loaded, data, spec, cache, cancel_after: int | None = None):
    token = CancelToken()
    events = []
    for event in sweep(loaded, data, spec, token, cache):
        events.append(event)
        if cancel_after is not None and isinstance(event, CellDone) and event.done == cancel_after:
            token.cancel()
    return events


def _table(result):
    return result.to_dict()


def test_cancel_and_resume_give_the_same_table(tmp_path, monkeypatch):
    loaded = loaded_model("mobilenet")
    data = dataset(loaded, calls=3, labels=5)
    reference = _run(loaded, data, SPEC, None)[-1].result
    first = _run(loaded, data, SPEC, tmp_path, cancel_after=5)
    assert isinstance(first[-1], RunCancelled)
    measured = []
    original = engine_module.CellEngine.layer_cells

    def counting(self, name, settings, check=lambda: None):
        for cell in original(self, name, settings, check):
            measured.append(cell)
            yield cell

    monkeypatch.setattr(engine_module.CellEngine, "layer_cells", counting)
    resumed = _run(loaded, data, SPEC, tmp_path)
    assert isinstance(resumed[-1], Finished)
    assert _table(resumed[-1].result) == _table(reference)
    total = len(reference.layers) * len(reference.settings)
    assert 0 < len(measured) <= total - 5  # the cells finished before the cancel were not measured again


def test_finished_sweep_reopens_without_measuring(tmp_path, monkeypatch):
    loaded = loaded_model("reused")
    data = dataset(loaded, calls=2)
    first = _run(loaded, data, SPEC, tmp_path)[-1].result

    def refuse(*args, **kwargs):
        raise AssertionError("a cached sweep must not measure")

    monkeypatch.setattr(engine_module.CellEngine, "__init__", refuse)
    again = _run(loaded, data, SPEC, tmp_path)
    assert _table(again[-1].result) == _table(first)
    assert sum(isinstance(e, CellDone) for e in again) == len(first.cells) + len(first.inverse)


def test_changed_weights_data_or_settings_measure_again(tmp_path, monkeypatch):
    loaded = loaded_model("reused")
    data = dataset(loaded, calls=2)
    _run(loaded, data, SPEC, tmp_path)
    builds = []
    original = engine_module.CellEngine.__init__

    def counting(self, *args, **kwargs):
        builds.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(engine_module.CellEngine, "__init__", counting)
    _run(loaded, data, SPEC, tmp_path)
    assert builds == []  # same everything: from the cache
    changed = loaded_model("reused")
    with torch.no_grad():
        changed.module.out.weight[0, 0] += 0.5
    _run(changed, data, SPEC, tmp_path)
    assert len(builds) == 1  # weights changed
    other = dataclasses.replace(data, inputs={k: v + 0.01 for k, v in data.inputs.items()})
    _run(loaded, other, SPEC, tmp_path)
    assert len(builds) == 2  # data changed
    _run(loaded, data, dataclasses.replace(SPEC, samples=8), tmp_path)
    assert len(builds) == 3  # samples changed
    _run(loaded, data, dataclasses.replace(SPEC, settings={"prune": ("0.3",), "quant": ("int8 w+a",)}), tmp_path)
    assert len(builds) == 4  # settings changed
    assert isinstance(loaded, LoadedModel)
