"""A pattern rule means "the layers this applies to": the matched layers a technique cannot take
are skipped with one warning per rule, an exact name keeps the error, a pattern left with no
layer is an error, and the what-if projection takes the layers the run takes. Real
architectures built from transformers configs with random weights, at tiny sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from studio.core.base.events import Finished, LayerDone, Warning
from studio.core.model.inspection import inspect_model
from studio.core.model.input_spec import InputSpec
from studio.core.model.loaded_model import LoadedModel
from studio.core.pipelines.compress import compress
from studio.core.plan import CompressionPlan, PlanError
from studio.core.plan.projection import project_plan
from studio.core.plan.resolve import resolve, resolve_plan, resolve_with_problems

STRUCTURED = {"mode": "structured", "amount": 0.5}
IMAGE = "pixel_values 1x3x32x32 float32"
TEXT = "input_ids 1x16 int64 [0,100); attention_mask 1x16 int64 [1,2)"


def _plan(*rules: dict) -> CompressionPlan:
    return CompressionPlan.from_dict({"rules": list(rules)})


@pytest.fixture(scope="module")
def mobilenet() -> LoadedModel:
    from transformers import MobileNetV2Config, MobileNetV2ForImageClassification

    torch.manual_seed(0)
    model = MobileNetV2ForImageClassification(MobileNetV2Config(image_size=32, depth_multiplier=0.35, num_labels=3))
    return LoadedModel(model.eval(), "mobilenet-v2", "mobilenet-v2", "huggingface", InputSpec.parse(IMAGE))


def _prunable(model: nn.Module) -> set[str]:
    return {n for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}


def _grouped_convs(model: nn.Module) -> set[str]:
    return {n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1}


def _run(loaded: LoadedModel, plan: CompressionPlan):
    events = list(compress(loaded, plan))
    result = next(e.result for e in events if isinstance(e, Finished))
    return result, [e.message for e in events if isinstance(e, Warning)], [e.change.name for e in events
                                                                           if isinstance(e, LayerDone)]


def test_star_structured_skips_depthwise_and_output_layer_and_runs(mobilenet):
    model = mobilenet.module
    depthwise = _grouped_convs(model)
    assert len(depthwise) == 17  # independent count: every MobileNetV2 block's 3x3 conv (and the stem's)
    plan = _plan({"layers": "*", "prune": STRUCTURED})
    resolution = resolve_plan(plan, model, mobilenet.example_inputs())
    assert resolution.problems == ()
    assert set(resolution.skipped["prune"]) == depthwise | {"classifier"}
    assert set(resolution.assignments["prune"]) == _prunable(model) - depthwise - {"classifier"}
    [warning] = resolution.warnings  # one warning for the rule, the reasons grouped
    assert warning.startswith("rule 1 (*): skipped 18 layer(s) that pruning (structured 50% l2) cannot take "
                              "(35 taken) — 17: a depthwise/grouped conv follows its input channels (")
    assert "… (+14)); 1: structured pruning would remove outputs of the model's final layer" in warning
    assert warning.endswith("(classifier)")

    projection = project_plan(plan, model, inspect_model(model, mobilenet.input_spec), mobilenet.example_inputs())
    assert projection.problems == () and projection.warnings == resolution.warnings
    projected = {n for n, layer in projection.layers.items() if not layer.coupled}

    result, warnings, changed = _run(mobilenet, plan)
    assert warnings == [warning]  # the run says the same
    assert set(changed) == projected == set(resolution.assignments["prune"])  # what-if and run agree
    args, kwargs = mobilenet.example_inputs()
    assert result.compressed(*args, **kwargs).logits.shape == (1, 3)
    assert all(dict(result.compressed.named_modules())[n].groups > 1 for n in depthwise)


def test_exact_names_keep_the_error(mobilenet):
    model = mobilenet.module
    depthwise = sorted(_grouped_convs(model))[0]
    with pytest.raises(PlanError) as info:
        resolve(_plan({"layers": depthwise, "prune": STRUCTURED}), model)
    assert info.value.problems == [f"layer {depthwise}: prune: a depthwise/grouped conv follows its input "
                                   "channels; prune the conv that feeds it"]
    with pytest.raises(PlanError) as info:  # the output layer is found by tracing: with example inputs
        resolve(_plan({"layers": "classifier", "prune": STRUCTURED}), model, mobilenet.example_inputs())
    assert "layer classifier: prune: structured pruning would remove outputs" in info.value.problems[0]
    assert resolve(_plan({"layers": "classifier", "prune": STRUCTURED}), model)  # untraced: not known yet


def test_a_pattern_left_with_no_layer_is_an_error(mobilenet):
    problems = resolve_plan(_plan({"layers": "*.conv_3x3.convolution", "prune": STRUCTURED}), mobilenet.module).problems
    assert len(problems) == 1
    assert problems[0].startswith("rule 1 (*.conv_3x3.convolution): matches no layer that pruning (structured 50% l2) "
                                  "can take — 17: a depthwise/grouped conv follows its input channels (")
    problems = resolve_plan(_plan({"layers": "*.foo", "prune": STRUCTURED}), mobilenet.module).problems
    assert problems == ("rule 1 (*.foo): matches no layer of this model.",)
    problems = resolve_plan(_plan({"layers": "*.normalization", "prune": STRUCTURED}), mobilenet.module).problems
    assert problems[0].startswith("rule 1 (*.normalization): matches 52 layer(s) but none that pruning "
                                  "(structured 50% l2) can take (it takes Linear, Conv2d)")


def test_exclusions_and_more_specific_rules_still_win(mobilenet):
    model = mobilenet.module
    plan = _plan({"layers": "*", "prune": STRUCTURED}, {"layers": "classifier", "prune": None},
                 {"layers": "mobilenet_v2.layer.1*", "prune": {"mode": "unstructured", "amount": 0.3}})
    resolution = resolve_plan(plan, model, mobilenet.example_inputs())
    assert resolution.problems == ()
    assert "classifier" not in resolution.skipped["prune"] and "classifier" not in resolution.assignments["prune"]
    unstructured = {n for n, c in resolution.assignments["prune"].items() if c.mode == "unstructured"}
    layer1 = {n for n in _prunable(model) if n.startswith("mobilenet_v2.layer.1")}
    assert unstructured == layer1  # their depthwise convs too: unstructured pruning takes them
    assert len(resolution.warnings) == 1 and "(classifier)" not in resolution.warnings[0]
    assert set(resolution.skipped["prune"]) == _grouped_convs(model) - layer1  # layer.1 and layer.10-15 are taken
    assert resolution.warnings[0].startswith(f"rule 1 (*): skipped {len(_grouped_convs(model) - layer1)} layer(s)")


def test_per_layer_checks_skip_without_tracing():
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 2))
    assignments, problems = resolve_with_problems(_plan({"layers": "*", "lowrank": {"method": "svd", "rank": 4}}), model)
    assert problems == [] and set(assignments["lowrank"]) == {"0", "2"}
    resolution = resolve_plan(_plan({"layers": "*", "lowrank": {"method": "svd", "rank": 4}}), model)
    assert resolution.warnings == ("rule 1 (*): skipped 1 layer(s) that rank reduction (svd r=4) cannot take (2 taken) "
                                   "— 1: rank 4 exceeds the largest possible rank 2 of this 2x64 Linear (4)",)
    with pytest.raises(PlanError, match="layer 4: lowrank: rank 4 exceeds"):
        resolve(_plan({"layers": "4", "lowrank": {"method": "svd", "rank": 4}}), model)
    # two pattern rules of one specificity that disagree are still a conflict, not a skip
    with pytest.raises(PlanError, match="conflicting lowrank settings"):
        resolve(_plan({"layers": "?", "lowrank": {"rank": 4}}, {"layers": "re:.", "lowrank": {"rank": 2}}), model)


@pytest.mark.parametrize("arch", ["vit", "distilbert"])
def test_attention_projections_are_skipped_by_a_star_rule(arch):
    """DistilBERT names its projections q_lin/k_lin/v_lin: pruned as plain Linears they broke the
    head layout (the run failed in the attention's reshape)."""
    import transformers as T

    torch.manual_seed(0)
    if arch == "vit":
        model = T.ViTForImageClassification(T.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                                         num_attention_heads=4, intermediate_size=64, num_labels=3))
        spec = IMAGE
    else:
        model = T.DistilBertForSequenceClassification(T.DistilBertConfig(
            vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=64, max_position_embeddings=64, num_labels=3))
        spec = TEXT
    loaded = LoadedModel(model.eval(), arch, arch, "huggingface", InputSpec.parse(spec))
    plan = _plan({"layers": "*", "prune": STRUCTURED})
    resolution = resolve_plan(plan, loaded.module, loaded.example_inputs())
    projections = {n for n in _prunable(loaded.module) if n.rsplit(".", 1)[-1][:1] in "qkv" and "attention" in n}
    assert len(projections) == 6 and resolution.problems == ()
    assert set(resolution.skipped["prune"]) == projections | {"classifier"}
    result, warnings, changed = _run(loaded, plan)
    assert warnings == list(resolution.warnings) and set(changed) == set(resolution.assignments["prune"])
    args, kwargs = loaded.example_inputs()
    assert result.compressed(*args, **kwargs).logits.shape == (1, 3)


def test_sample_recipes_take_the_same_layers():
    from pathlib import Path

    from studio.core.pipelines.opening import LoadRequest, load_model

    loaded = load_model(LoadRequest("sample:digits-cnn"))
    expected = {
        "digits-prune-quantize.yaml": {"prune": ["classifier.1", "features.0.0", "features.1.0"],
                                       "quantize": ["classifier.1", "classifier.4", "features.0.0", "features.1.0",
                                                    "features.3.depthwise.0", "features.3.pointwise.0"]},
        "digits-tucker.yaml": {"lowrank": ["classifier.1", "features.1.0"], "quantize": ["classifier.1", "classifier.4"]},
    }
    for name, layers in expected.items():
        resolution = resolve_plan(CompressionPlan.load(Path("resources/recipes") / name), loaded.module,
                                  loaded.example_inputs())
        assert resolution.problems == () and resolution.warnings == ()
        assert {k: sorted(v) for k, v in resolution.assignments.items()} == layers
