"""Tree actions edit the plan and nothing else; edits compose and resolve as the user expects."""

from __future__ import annotations

from torch import nn

from studio.core.plan import CompressionPlan
from studio.core.plan.editing import add_pattern_rule, clear_layers, mark_layers, remove_rule
from studio.core.plan.projection import project_plan
from studio.core.plan.resolve import resolve
from studio.core.model.inspection import inspect_model
from studio.core.model.input_spec import InputSpec
from studio.core.techniques.pruning import PruneConfig


def model():
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)).eval()


def test_mark_then_clear_round_trips_to_empty():
    plan = mark_layers(CompressionPlan(), ["0", "2"], "prune", PruneConfig(amount=0.3))
    assert set(resolve(plan, model())["prune"]) == {"0", "2"}
    plan = mark_layers(plan, ["2"], "prune", PruneConfig(amount=0.6))
    assert resolve(plan, model())["prune"]["2"].amount == 0.6 and len(plan.rules) == 2
    assert clear_layers(clear_layers(plan, ["0"]), ["2"], "prune") == CompressionPlan()


def test_clear_under_a_pattern_rule_adds_an_exclusion():
    plan = add_pattern_rule(CompressionPlan(), "*", "prune", PruneConfig(amount=0.5))
    plan = clear_layers(plan, ["4"])
    assert set(resolve(plan, model())["prune"]) == {"0", "2"}
    assert plan.rules[-1].to_dict() == {"layers": "4", "prune": None}
    assert remove_rule(plan, 0).rules == (plan.rules[1],)


def test_projection_tracks_marks_without_running():
    m = model()
    tree = inspect_model(m, InputSpec.parse("1x16 float32"))
    empty = project_plan(CompressionPlan(), m, tree)
    assert empty.after == empty.before and not empty.layers
    plan = mark_layers(CompressionPlan(), ["2"], "prune", PruneConfig(mode="unstructured", amount=0.5))
    projected = project_plan(plan, m, tree)
    assert projected.after.params == projected.before.params
    assert projected.before.nonzero - projected.after.nonzero == 32 * 32 // 2
    structured = project_plan(mark_layers(CompressionPlan(), ["0"], "prune", PruneConfig(mode="structured", amount=0.5)), m, tree)
    assert structured.layers["0"].saved_params == (16 * 32 + 32) // 2
    assert structured.after.flops < structured.before.flops
