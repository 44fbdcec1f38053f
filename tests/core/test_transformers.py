"""Structured transformer compression on a small BERT: attention heads, FFN neurons and whole
layers removed; each pruned model equals a reference built by hand from the original (heads
or neurons zeroed, layers skipped), parameter counts equal the formulas, the projection equals
what is measured, and the exported files agree with PyTorch."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from studio.core.base.events import Finished
from studio.core.model.inspection import inspect_model
from studio.core.model.input_spec import InputSpec
from studio.core.model.loaded_model import LoadedModel
from studio.core.model.measure import figures
from studio.core.pipelines.compress import compress
from studio.core.pipelines.finetune import hidden_mse, teacher_name
from studio.core.plan import CompressionPlan, PlanError
from studio.core.plan.projection import project_plan
from studio.core.plan.resolve import resolve
from studio.core.techniques.heads import head_count, prune_heads_
from tests import zoo

SPEC = "input_ids 2x16 int64 [0,120); attention_mask 2x16 int64 [1,2)"
HIDDEN, HEADS, FFN, LAYERS = 32, 4, 64, 3


def _loaded() -> LoadedModel:
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    config = zoo.tiny_bert_config(num_labels=3, num_hidden_layers=LAYERS, hidden_dropout_prob=0.0,
                                  attention_probs_dropout_prob=0.0)
    model = BertForSequenceClassification(config).eval()
    return LoadedModel(model, "tiny-bert", "tiny-bert", "huggingface", InputSpec.parse(SPEC))


def _compress(loaded: LoadedModel, rules: list[dict]):
    plan = CompressionPlan.from_dict({"rules": rules})
    tree = inspect_model(loaded.module, loaded.input_spec)
    projection = project_plan(plan, loaded.module, tree, loaded.example_inputs())
    events = list(compress(loaded, plan))
    result = [e for e in events if isinstance(e, Finished)][0].result
    return result, projection


def _logits(model: nn.Module, loaded: LoadedModel) -> torch.Tensor:
    args, kwargs = loaded.example_inputs()
    with torch.no_grad():
        return model(*args, **kwargs).logits


def _projection_is_measured(loaded, result, projection):
    before, after = figures(loaded.module, loaded.input_spec), figures(result.compressed, loaded.input_spec)
    assert projection.before.params == before.params and projection.after.params == after.params
    assert projection.after.bytes - projection.before.bytes == after.bytes - before.bytes


# --- heads -------------------------------------------------------------------------------------

@pytest.mark.parametrize("setting,kept", [({"keep": 1}, 1), ({"amount": 0.5}, 2), ({"remove": "0,3"}, 2),
                                          ({"keep": 3, "importance": "l2"}, 3)])
def test_head_pruning_equals_zeroed_heads_and_the_formula(setting, kept):
    loaded = _loaded()
    result, projection = _compress(loaded, [{"layers": "bert.encoder.layer.*.attention", "heads": setting}])
    size = HIDDEN // HEADS
    per_layer_removed = (HEADS - kept) * size * (3 * HIDDEN + 3 + HIDDEN)  # q/k/v rows + biases, output columns
    assert sum(p.numel() for p in result.compressed.parameters()) == \
        sum(p.numel() for p in loaded.module.parameters()) - LAYERS * per_layer_removed
    _projection_is_measured(loaded, result, projection)
    reference = copy.deepcopy(loaded.module)
    for i, layer in enumerate(result.compressed.bert.encoder.layer):
        assert head_count(layer.attention) == (kept, size)
        original = reference.bert.encoder.layer[i].attention
        gone = [int(d.split("[")[1].split("]")[0].split(",")[j]) for d in
                [c.detail for c in result.changes if c.name == f"bert.encoder.layer.{i}.attention"]
                for j in range(HEADS - kept)]
        with torch.no_grad():  # a removed head is one whose output projection columns are zero
            for h in gone:
                original.output.dense.weight[:, h * size:(h + 1) * size] = 0
    torch.testing.assert_close(_logits(result.compressed, loaded), _logits(reference, loaded), atol=1e-5, rtol=1e-4)


def test_gradient_importance_removes_the_heads_that_matter_least():
    """A head whose value rows are zero contributes nothing: Michel's score ranks it last."""
    loaded = _loaded()
    with torch.no_grad():
        attention = loaded.module.bert.encoder.layer[0].attention
        attention.self.value.weight[16:24] = 0  # head 2
        attention.self.value.bias[16:24] = 0
    result, _ = _compress(loaded, [{"layers": "bert.encoder.layer.0.attention", "heads": {"keep": 3}}])
    assert "removed heads [2]" in result.changes[0].detail


def test_head_settings_are_checked_per_layer():
    model = _loaded().module
    for setting, words in (({"keep": 5}, "more than"), ({"remove": "0,9"}, "heads 0–3"),
                           ({"remove": "0,1,2,3"}, "at least one"), ({"remove": "a"}, "remove")):
        with pytest.raises(PlanError) as caught:
            resolve(CompressionPlan.from_dict({"rules": [{"layers": "bert.encoder.layer.0.attention",
                                                          "heads": setting}]}), model)
        assert words in str(caught.value)


def test_prune_heads_twice_counts_from_what_is_left():
    attention = _loaded().module.bert.encoder.layer[0].attention
    prune_heads_(attention, [0])
    prune_heads_(attention, [0])
    assert head_count(attention) == (2, HIDDEN // HEADS) and attention.output.dense.in_features == 16


# --- FFN neurons --------------------------------------------------------------------------------

def test_ffn_neuron_pruning_removes_the_coupled_output_inputs():
    loaded = _loaded()
    result, projection = _compress(loaded, [{"layers": "bert.encoder.layer.*.intermediate.dense",
                                             "prune": {"mode": "structured", "amount": 0.25}}])
    kept = FFN - FFN // 4
    reference = copy.deepcopy(loaded.module)
    for i, layer in enumerate(result.compressed.bert.encoder.layer):
        assert layer.intermediate.dense.out_features == kept and layer.output.dense.in_features == kept
        original = reference.bert.encoder.layer[i]
        rows = original.intermediate.dense.weight
        kept_rows = {tuple(r.tolist()) for r in layer.intermediate.dense.weight}
        with torch.no_grad():
            for n in range(FFN):
                if tuple(rows[n].tolist()) not in kept_rows:
                    original.output.dense.weight[:, n] = 0  # a removed neuron feeds nothing
    removed = LAYERS * (FFN // 4) * (HIDDEN + 1 + HIDDEN)
    assert sum(p.numel() for p in result.compressed.parameters()) == \
        sum(p.numel() for p in loaded.module.parameters()) - removed
    _projection_is_measured(loaded, result, projection)
    torch.testing.assert_close(_logits(result.compressed, loaded), _logits(reference, loaded), atol=1e-5, rtol=1e-4)


# --- layers -------------------------------------------------------------------------------------

@pytest.mark.parametrize("rules,gone", [([{"layers": "bert.encoder.layer.1", "drop": True}], [1]),
                                        ([{"layers": "bert.encoder.layer.*", "drop": {"keep_every": 2}}], [1])])
def test_layer_dropping_equals_skipping_the_layer(rules, gone):
    loaded = _loaded()
    result, projection = _compress(loaded, rules)
    model = result.compressed
    assert len(model.bert.encoder.layer) == LAYERS - len(gone) == model.config.num_hidden_layers
    assert loaded.module.config.num_hidden_layers == LAYERS and len(loaded.module.bert.encoder.layer) == LAYERS
    per_layer = sum(p.numel() for p in loaded.module.bert.encoder.layer[0].parameters())
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in loaded.module.parameters()) \
        - len(gone) * per_layer
    _projection_is_measured(loaded, result, projection)
    reference = copy.deepcopy(loaded.module)
    reference.bert.encoder.layer = nn.ModuleList(
        [m for i, m in enumerate(reference.bert.encoder.layer) if i not in gone])
    torch.testing.assert_close(_logits(model, loaded), _logits(reference, loaded), atol=1e-5, rtol=1e-4)
    assert model.studio_layer_map == {"bert.encoder.layer.0": "bert.encoder.layer.0",
                                      "bert.encoder.layer.1": "bert.encoder.layer.2"}


def test_dropping_every_layer_is_refused():
    loaded = _loaded()
    with pytest.raises(PlanError, match="keep at least one"):
        _compress(loaded, [{"layers": "bert.encoder.layer.*", "drop": True}])


def test_structure_quantization_and_drop_compose_and_project_exactly():
    loaded = _loaded()
    result, projection = _compress(loaded, [
        {"layers": "bert.encoder.layer.*.attention", "heads": {"keep": 2}},
        {"layers": "bert.encoder.layer.*.intermediate.dense", "prune": {"mode": "structured", "amount": 0.5}},
        {"layers": "bert.encoder.layer.2", "drop": True}])
    _projection_is_measured(loaded, result, projection)
    assert [head_count(layer.attention)[0] for layer in result.compressed.bert.encoder.layer] == [2, 2]


def test_hidden_states_are_matched_through_the_layer_map():
    mapping = {"bert.encoder.layer.1": "bert.encoder.layer.2"}
    assert teacher_name("bert.encoder.layer.1.output", mapping) == "bert.encoder.layer.2.output"
    assert teacher_name("bert.encoder.layer.10", mapping) == "bert.encoder.layer.10"
    student = {"bert.encoder.layer.1": torch.ones(2, 3)}
    teacher = {"bert.encoder.layer.1": torch.zeros(2, 3), "bert.encoder.layer.2": torch.ones(2, 3)}
    assert float(hidden_mse(student, teacher)) == 1.0
    assert float(hidden_mse(student, teacher, mapping)) == 0.0


# --- export -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_pruned_bert_exports_match_pytorch(tmp_path, fmt):
    from studio.core.pipelines.export import ExportRequest, export

    loaded = _loaded()
    result, _ = _compress(loaded, [
        {"layers": "bert.encoder.layer.*.attention", "heads": {"keep": 2}},
        {"layers": "bert.encoder.layer.*.intermediate.dense", "prune": {"mode": "structured", "amount": 0.5}},
        {"layers": "bert.encoder.layer.1", "drop": True}])
    spec = InputSpec.parse(SPEC.replace("2x16", "1x16"))  # the exporters trace batch 1
    pruned = LoadedModel(result.compressed, "pruned", "pruned", "huggingface", spec)
    events = list(export(pruned, ExportRequest(fmt, tmp_path / f"p.{fmt}", "fp32", samples=8), None))
    verification = events[-1].result.report.to_dict()["verification"]
    assert verification["max_abs"] < 1e-3 and verification["top1_agreement"] == 1.0


def test_fine_tuning_masks_follow_layers_renumbered_by_dropping():
    """Unstructured pruning of layer 2 after dropping layer 0: the pruned layer is now layer 1,
    and fine-tuning must keep ITS zeros (not mask the layer that took its old number)."""
    from studio.core.pipelines.run import _kept_masks

    loaded = _loaded()
    result, _ = _compress(loaded, [
        {"layers": "bert.encoder.layer.2.intermediate.dense", "prune": {"mode": "unstructured", "amount": 0.5}},
        {"layers": "bert.encoder.layer.0", "drop": True},
        {"layers": "bert.encoder.layer.0.intermediate.dense", "prune": {"mode": "unstructured", "amount": 0.5}},
    ])
    pruned = result.compressed.get_submodule("bert.encoder.layer.1.intermediate.dense").weight
    masks = _kept_masks(result.compressed, result)
    assert len(masks) == 1  # the layer-0 pruning went with its layer
    weight, mask = masks[0]
    assert weight is pruned and torch.equal(mask, (pruned != 0).to(mask.dtype))
    assert 0.45 < float((mask == 0).float().mean()) < 0.55


# --- shipped MiniLM recipes -----------------------------------------------------------------------

def _minilm_layer_params(hidden: int, head_dim: int, heads: int, ffn: int) -> int:
    """One BERT encoder layer: Q/K/V and the output projection over `heads` heads, two LayerNorms,
    the feed-forward pair over `ffn` neurons."""
    width = heads * head_dim
    return 3 * (hidden * width + width) + width * hidden + hidden + ffn * hidden + ffn \
        + ffn * hidden + hidden + 4 * hidden


@pytest.mark.slow
def test_shipped_minilm_recipes_resolve_and_minilm_7x_projects_the_formula():
    """Every resources/recipes/minilm-*.yaml resolves on the sample it names; minilm-7x (2 of 6
    layers kept, 6 of 12 heads, 921 of 1536 FFN neurons removed) projects the hand-counted params."""
    from pathlib import Path

    from studio.core.pipelines.opening import LoadRequest, load_model

    loaded = load_model(LoadRequest("sample:minilm-sentiment"))
    recipes = sorted(Path("resources/recipes").glob("minilm-*.yaml"))
    assert len(recipes) >= 2
    for path in recipes:
        assert resolve(CompressionPlan.load(path), loaded.module)
    plan = CompressionPlan.load(Path("resources/recipes/minilm-7x.yaml"))
    tree = inspect_model(loaded.module, loaded.input_spec)
    projection = project_plan(plan, loaded.module, tree, loaded.example_inputs())
    full, kept = _minilm_layer_params(384, 32, 12, 1536), _minilm_layer_params(384, 32, 6, 1536 - 921)
    assert full == 1_774_464  # the log's params_before for one MiniLM layer
    assert projection.after.params == projection.before.params - 6 * full + 2 * kept
