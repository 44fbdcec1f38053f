"""Target-driven plans: the DP is optimal (checked against brute force), the fitted plan meets
its target when applied, and it loses no more than a uniform plan with the same saving."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from studio.core.data.sources import open_dataset
from studio.core.base.errors import StudioError
from studio.core.base.events import Finished
from studio.core.model.loaders.samples import load_sample
from studio.core.plan import CompressionPlan
from studio.core.pipelines.sensitivity import SensitivityCell, SweepSpec, Target, fit_to_target, sweep
from studio.core.pipelines.sensitivity.fit import _solve_drop, _solve_saving
from studio.core.pipelines.sensitivity.report import verify


def _cell(layer: str, label: str, drop: float, saved: int) -> SensitivityCell:
    return SensitivityCell(layer, label, drop, 1 - drop, saved, saved, saved, None, saved)


@pytest.mark.parametrize("seed", range(5))
def test_dp_matches_brute_force(seed):
    rng = random.Random(seed)
    options = [[_cell(f"l{i}", f"s{j}", rng.uniform(-0.01, 0.2), rng.randrange(1, 50) * 10) for j in range(3)]
               for i in range(4)]
    combos = list(itertools.product(*[[None] + cells for cells in options]))
    need = 400

    def saved(c): return sum(x.saved_bytes for x in c if x)
    def drop(c): return sum(x.drop for x in c if x)
    feasible = [c for c in combos if saved(c) >= need]
    chosen = _solve_saving(options, "saved_bytes", need)
    if feasible:
        assert saved(chosen) >= need
        assert drop(chosen) == pytest.approx(min(drop(c) for c in feasible))
    allowed = 0.15
    best = max(saved(c) for c in combos if sum(max(x.drop, 0) for x in c if x) <= allowed)
    picked = _solve_drop(options, "saved_bytes", allowed)
    assert sum(max(x.drop, 0) for x in picked if x) <= allowed + 1e-9
    assert saved(picked) == best


@pytest.fixture(scope="module")
def digits_sweep():
    loaded = load_sample("digits-cnn")
    data = open_dataset("sample", loaded)
    spec = SweepSpec(techniques=("prune", "quant"), settings={"prune": ("0.3", "0.5", "0.7", "0.9"),
                                                             "quant": ("int8 w+a", "int4")}, samples=200)
    return loaded, data, list(sweep(loaded, data, spec))[-1].result


def _measured(loaded, data, plan: CompressionPlan, samples: int) -> dict:
    from studio.core.pipelines.sensitivity.spec import FittedPlan

    return verify(loaded, data, FittedPlan(plan, 0.0, 0, 0, 0, (), "uniform", True), samples)


def test_params_target_is_met_and_beats_the_uniform_plan(digits_sweep):
    from studio.core.pipelines.compress import compress

    loaded, data, result = digits_sweep
    uniform = CompressionPlan.from_dict({"rules": [{"layers": "*", "prune": {"mode": "unstructured", "amount": 0.5}}]})
    report = next(e.result for e in compress(loaded, uniform, batches=[]) if isinstance(e, Finished)).report.to_dict()
    kept = report["after"]["nonzero_params"] / report["before"]["nonzero_params"]
    fitted = fit_to_target(result, loaded, Target("params", kept))
    assert fitted.met and fitted.solver.startswith("exact DP")
    applied = next(e.result for e in compress(loaded, fitted.plan, batches=[]) if isinstance(e, Finished)).report.to_dict()
    assert applied["after"]["nonzero_params"] <= kept * applied["before"]["nonzero_params"] + 1
    mine = _measured(loaded, data, fitted.plan, result.samples)["measured_drop"]
    theirs = _measured(loaded, data, uniform, result.samples)["measured_drop"]
    assert mine <= theirs + 1e-9
    assert fitted.predicted_drop == pytest.approx(sum(result.cell(l, s).drop for l, s in fitted.choices))


def test_size_and_drop_targets(digits_sweep):
    loaded, data, result = digits_sweep
    size = 60_000
    fitted = fit_to_target(result, loaded, Target("size", size))
    assert fitted.met and fitted.predicted_bytes <= size
    measured = verify(loaded, data, fitted, result.samples)
    assert measured["measured_bytes"] <= size
    assert math.isfinite(measured["measured_drop"])
    loose = fit_to_target(result, loaded, Target("max_drop", 0.01))
    assert loose.met and loose.predicted_drop <= 0.01 and loose.choices
    assert not fit_to_target(result, loaded, Target("size", 1000)).met
    with pytest.raises(StudioError):
        fit_to_target(result, loaded, Target("params", 1.5))
