"""Executors: local worker processes and a local 2-worker Ray give the in-process table."""

from __future__ import annotations

import dataclasses

import pytest

from studio.core.data.sources import open_dataset
from studio.core.model.loaders.samples import load_sample
from studio.core.pipelines.sensitivity import SweepSpec, sweep

SPEC = SweepSpec(techniques=("prune", "quant"), layers="classifier.*", settings={"prune": ("0.5",), "quant": ("int4",)},
                 samples=48, inverse=False)


@pytest.fixture(scope="module")
def digits():
    loaded = load_sample("digits-cnn")
    return loaded, open_dataset("sample", loaded), list(sweep(loaded, open_dataset("sample", loaded), SPEC))[-1].result


def test_worker_processes_match_in_process(digits):
    loaded, data, expected = digits
    result = list(sweep(loaded, data, dataclasses.replace(SPEC, workers=2)))[-1].result
    assert result.to_dict() == expected.to_dict()


def test_local_ray_matches_in_process(digits):
    pytest.importorskip("ray")
    loaded, data, expected = digits
    result = list(sweep(loaded, data, dataclasses.replace(SPEC, ray="local", workers=2)))[-1].result
    assert result.to_dict() == expected.to_dict()
