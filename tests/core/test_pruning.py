"""Pruning: unstructured magnitude, 2:4, structured channels with their coupled layers, and the
hooks through which generic code learns pruning's special cases (conflicts, copies, masks)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from studio.core.base.errors import StudioError
from studio.core.base.events import Finished
from studio.core.model.input_spec import InputSpec
from studio.core.model.inspection import inspect_model
from studio.core.model.loaded_model import LoadedModel
from studio.core.model.measure import figures
from studio.core.pipelines.apply import apply_assignments_, editable_copy
from studio.core.pipelines.compress import compress
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.plan import CompressionPlan, PlanError
from studio.core.plan.editing import mark_layers
from studio.core.plan.projection import project_plan
from studio.core.plan.resolve import resolve
from studio.core.techniques import all_techniques
from studio.core.techniques.base import ApplyContext, LayerChange
from studio.core.techniques.pruning import Prune, PruneConfig

PRUNE = Prune()


def model():
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)).eval()


def _apply(net, targets, spec="1x16 float32"):
    context = ApplyContext(InputSpec.parse(spec).make_inputs())
    return list(PRUNE.apply_(net, targets, context))


def _compressed(module, spec, plan):
    loaded = LoadedModel(module=module, name="m", source="m", kind="test", input_spec=spec)
    return [e for e in compress(loaded, plan) if isinstance(e, Finished)][0].result.compressed


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.9])
def test_unstructured_zeroes_the_smallest_weights(amount):
    torch.manual_seed(0)
    net = model()
    weight = net[2].weight.detach().clone()
    change, = _apply(net, {"2": PruneConfig(amount=amount)})
    count = round(weight.numel() * amount)  # independent: the `count` smallest magnitudes go
    smallest = weight.abs().flatten().argsort()[:count]
    expected = weight.flatten().clone()
    expected[smallest] = 0
    assert torch.equal(net[2].weight.detach().flatten(), expected)
    assert change.params_before == change.params_after and change.detail.startswith("unstructured")


def test_two_of_four_keeps_the_two_largest_of_every_group():
    torch.manual_seed(0)
    net = model()
    weight = net[2].weight.detach().clone()
    _apply(net, {"2": PruneConfig(mode="2:4")})
    groups, before = net[2].weight.detach().reshape(32, -1, 4), weight.reshape(32, -1, 4)
    assert ((groups != 0).sum(-1) == 2).all()
    kept = before.abs().topk(2, dim=-1).values.sum(-1)
    assert torch.allclose(groups.abs().sum(-1), kept)


def test_two_of_four_needs_fan_in_multiple_of_four():
    with pytest.raises(PlanError, match="multiple of 4"):
        resolve(CompressionPlan.from_dict({"rules": [{"layers": "0", "prune": {"mode": "2:4"}}]}),
                nn.Sequential(nn.Linear(6, 8)))


def test_structured_removes_neurons_and_the_next_layers_inputs():
    torch.manual_seed(0)
    net = model()
    x = torch.randn(3, 16)
    change, = _apply(net, {"0": PruneConfig(mode="structured", amount=0.25)})
    assert net[0].out_features == 24 and net[2].in_features == 24 and net[2].out_features == 32
    assert change.params_after == 24 * 16 + 24 and "coupled" in change.detail
    assert net(x).shape == (3, 4)


def test_structured_pruning_of_final_layer_is_a_validation_error():
    digits = load_model(LoadRequest("sample:digits-cnn"))
    with pytest.raises(StudioError, match="classifier.4.*final layer"):
        list(compress(digits, CompressionPlan.from_dict(
            {"rules": [{"layers": "classifier.4", "prune": {"mode": "structured", "amount": 0.5}}]})))


def test_structured_projection_counts_coupled_layers_like_the_run():
    """BatchNorms, the next layer's inputs and residual partners shrink too; with example
    inputs the projection reads them from the dependency graph and matches the real result."""
    from tests.zoo import TinyMobileNet

    m = model()
    spec = InputSpec.parse("1x16 float32")
    tree = inspect_model(m, spec)
    plan = mark_layers(CompressionPlan(), ["0"], "prune", PruneConfig(mode="structured", amount=0.5))
    projected = project_plan(plan, m, tree, spec.make_inputs())
    assert projected.layers["2"].coupled and projected.layers["2"].saved_params == 32 * 16  # next Linear's inputs
    assert projected.after.params == figures(_compressed(m, spec, plan), spec).params

    torch.manual_seed(0)
    net = TinyMobileNet().eval()
    spec = InputSpec.parse("1x3x32x32 float32")
    tree = inspect_model(net, spec)
    # the stem feeds a residual add: its BatchNorm, the depthwise conv, the pointwise conv on the
    # other branch (outputs and inputs), its BatchNorm and the head's inputs all shrink with it
    plan = mark_layers(CompressionPlan(), ["stem.0"], "prune", PruneConfig(mode="structured", amount=0.25))
    weights = {k: v.clone() for k, v in net.state_dict().items()}
    projected = project_plan(plan, net, tree, spec.make_inputs())
    assert all(torch.equal(v, weights[k]) for k, v in net.state_dict().items())  # the projection only reads
    assert not any(mod._forward_hooks for mod in net.modules()) and not net.training
    measured = figures(_compressed(net, spec, plan), spec)
    assert {n for n, layer in projected.layers.items() if layer.coupled} == {
        "stem.1", "dw.0", "dw.1", "pw.0", "pw.1", "head"}
    assert projected.after.params == measured.params
    assert abs(projected.after.flops - measured.flops) <= 0.01 * measured.flops



def test_a_projection_walks_the_dependency_groups_once(monkeypatch):
    """coupled_effects and coupled_flops read one walk of the targets' groups; another plan walks
    again, and a kept walk projects what a fresh one does."""
    import torch_pruning as tp

    from studio.core.techniques import pruning

    m = model()
    spec = InputSpec.parse("1x16 float32")
    tree = inspect_model(m, spec)

    def plan(amount):
        return mark_layers(CompressionPlan(), ["0", "2"], "prune", PruneConfig(mode="structured", amount=amount))

    first = project_plan(plan(0.5), m, tree, spec.make_inputs())  # (the graph is built here)
    walked, real = [], tp.DependencyGraph.get_pruning_group
    monkeypatch.setattr(tp.DependencyGraph, "get_pruning_group",
                        lambda graph, module, *rest, **kw: walked.append(module) or real(graph, module, *rest, **kw))
    other = project_plan(plan(0.25), m, tree, spec.make_inputs())
    assert walked == [m[0], m[2]]  # one group per structured target, once for both questions
    again = project_plan(plan(0.5), m, tree, spec.make_inputs())
    pruning._walk_cache.clear()
    fresh = project_plan(plan(0.5), m, tree, spec.make_inputs())
    assert len(walked) == 6 and first == again == fresh != other

# --- the hooks generic code asks ----------------------------------------------------------

def test_structured_pruning_conflicts_with_a_technique_that_replaces_the_layer():
    plan = CompressionPlan.from_dict({"rules": [
        {"layers": "2", "prune": {"mode": "structured", "amount": 0.5}, "lowrank": {"method": "svd", "rank": 4}}]})
    with pytest.raises(PlanError) as caught:
        resolve(plan, model())
    assert "layer 2: structured pruning and rank reduction on one layer conflict; choose one." in caught.value.problems
    fine = CompressionPlan.from_dict({"rules": [{"layers": "2", "prune": {"amount": 0.5}, "lowrank": {"rank": 4}}]})
    assert set(resolve(fine, model())) == {"prune", "lowrank"}


def test_only_structured_pruning_reaches_other_layers_and_takes_a_full_copy():
    assert PRUNE.changes_other_layers(PruneConfig(mode="structured"))
    assert not PRUNE.changes_other_layers(PruneConfig()) and not PRUNE.changes_other_layers(PruneConfig(mode="2:4"))
    net = model()
    shared = editable_copy(net, {"prune": {"0": PruneConfig()}})
    assert shared[2] is net[2] and shared[0] is not net[0]
    full = editable_copy(net, {"prune": {"0": PruneConfig(mode="structured")}})
    assert all(a is not b for a, b in zip(full.modules(), net.modules()))


def test_fine_tune_masks_keep_unstructured_zeros_only():
    torch.manual_seed(0)
    net = model()
    assignments = {"prune": {"0": PruneConfig(mode="structured", amount=0.25), "2": PruneConfig(amount=0.5),
                             "4": PruneConfig(mode="2:4")}}
    changes = list(apply_assignments_(net, assignments, ApplyContext(InputSpec.parse("1x16").make_inputs())))
    masks = {c.name: PRUNE.fine_tune_masks(net, c) for c in changes}
    assert masks["0"] == []
    for name in ("2", "4"):
        (weight, mask), = masks[name]
        assert weight is net.get_submodule(name).weight and torch.equal(mask, (weight != 0).float())
    other = LayerChange("2", "quantize", "int8", 10, 10)
    assert all_techniques()["quantize"].fine_tune_masks(net, other) == []
