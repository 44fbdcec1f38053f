"""The recipe format: round-trips, precedence and every listed validation error."""

from __future__ import annotations

import pytest
from torch import nn

from studio.core.plan import CompressionPlan, PlanError
from studio.core.plan.resolve import resolve
from tests import zoo

RECIPE = {
    "version": 1,
    "rules": [
        {"layers": "encoder.layer.*.intermediate.dense", "lowrank": {"method": "svd", "rank": 8}},
        {"layers": "re:encoder\\.layer\\.\\d+\\.output\\.dense", "prune": {"mode": "unstructured", "amount": 0.5}},
        {"layers": "*", "quantize": {"dtype": "int8", "activations": "dynamic"}},
        {"layers": "pooler.dense", "quantize": None},
    ],
    "settings": {"seed": 0},
}


def _bert():
    from transformers import BertModel

    return BertModel(zoo.tiny_bert_config()).eval()


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_round_trip_text(fmt):
    plan = CompressionPlan.from_dict(RECIPE)
    again = CompressionPlan.loads(plan.dumps(fmt), fmt)
    assert again == plan and again.to_dict() == plan.to_dict()
    assert again.to_dict()["rules"][3] == {"layers": "pooler.dense", "quantize": None}


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_round_trip_files(tmp_path, suffix):
    plan = CompressionPlan.from_dict(RECIPE)
    plan.save(tmp_path / f"r{suffix}")
    assert CompressionPlan.load(tmp_path / f"r{suffix}") == plan


def test_shipped_recipes_parse_and_resolve_on_their_samples():
    from pathlib import Path

    from studio.core.pipelines.opening import LoadRequest, load_model

    recipes = sorted(Path("resources/recipes").glob("*.yaml"))
    assert recipes
    for path in recipes:
        plan = CompressionPlan.load(path)
        sample = "sample:minilm-sentiment" if path.name.startswith("minilm") else "sample:digits-cnn"
        if sample.endswith("minilm-sentiment"):
            continue  # resolved in the slow compress test
        assert resolve(plan, load_model(LoadRequest(sample)).module)


def test_precedence_exact_over_pattern_over_default():
    model = _bert()
    assignments = resolve(CompressionPlan.from_dict(RECIPE), model)
    quantized = assignments["quantize"]
    assert "pooler.dense" not in quantized  # exact null beats the default
    assert "encoder.layer.0.attention.self.query" in quantized  # default reaches every Linear
    assert set(assignments["lowrank"]) == {"encoder.layer.0.intermediate.dense", "encoder.layer.1.intermediate.dense"}
    assert set(assignments["prune"]) == {"encoder.layer.0.output.dense", "encoder.layer.1.output.dense"}
    plan = CompressionPlan.from_dict({"rules": [
        {"layers": "*", "prune": {"amount": 0.3}},
        {"layers": "encoder.*", "prune": {"amount": 0.4}},
        {"layers": "encoder.layer.1.output.dense", "prune": {"amount": 0.6}},
    ]})
    prune = resolve(plan, model)["prune"]
    assert prune["pooler.dense"].amount == 0.3
    assert prune["encoder.layer.0.output.dense"].amount == 0.4
    assert prune["encoder.layer.1.output.dense"].amount == 0.6


def _problems(data, model) -> list[str]:
    with pytest.raises(PlanError) as info:
        resolve(CompressionPlan.from_dict(data), model)
    return info.value.problems


def test_validation_errors_name_layer_and_reason():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 4))
    problems = _problems({"rules": [
        {"layers": "nothing.*", "prune": {"amount": 0.5}},                        # matches nothing
        {"layers": "1", "prune": {"amount": 0.5}},                                 # ReLU: not applicable
        {"layers": "3", "lowrank": {"method": "svd", "rank": 4}},                  # rank saves nothing
        {"layers": "0", "prune": {"amount": 1.5}},                                 # ratio outside (0, 1)
        {"layers": "re:[03]", "quantize": {"dtype": "int8"}},
        {"layers": "*", "quantize": {"dtype": "fp16"}},
        {"layers": "?", "quantize": {"dtype": "int4", "group_size": 8}},         # conflicts with rule 5
    ]}, model)
    text = "\n".join(problems)
    assert "rule 1 (nothing.*): matches no layer" in text
    assert "rule 2 (1): prune does not apply to ReLU" in text
    assert "layer 3: lowrank:" in text and "rank" in text
    assert "amount 1.5 must be a fraction strictly between 0 and 1" in text
    assert "conflicting quantize settings" in text and "rule 5" in text and "rule 7" in text


def test_parse_errors_are_listed_together():
    with pytest.raises(PlanError) as info:
        CompressionPlan.from_dict({"rules": [
            {"layers": "a", "quantize": {"dtype": "int3"}},
            {"layers": "b", "sparsify": {}},
            {"prune": {"amount": 0.5}},
            {"layers": "c"},
            {"layers": "re:(", "prune": {}},
        ]})
    text = "\n".join(info.value.problems)
    assert "int3" in text and "unknown technique 'sparsify'" in text and "needs 'layers'" in text
    assert "names no technique" in text and "invalid regex" in text
    assert len(info.value.problems) == 5


@pytest.mark.parametrize("data,fragment", [
    ({"version": 2, "rules": []}, "version 2"),
    ({"rules": [], "extra": 1}, "Unknown recipe key"),
    ([1, 2], "mapping"),
    ({"rules": [{"layers": "a", "prune": {"amount": 0.5, "bogus": 1}}]}, "unknown key(s) bogus"),
])
def test_structural_errors(data, fragment):
    with pytest.raises(Exception) as info:
        CompressionPlan.from_dict(data)
    assert fragment in str(info.value)


def test_bad_files(tmp_path):
    from studio.core.base.errors import StudioError

    with pytest.raises(StudioError, match="no such recipe"):
        CompressionPlan.load(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("rules: [ {layers: 'a'")
    with pytest.raises(StudioError, match="not valid YAML"):
        CompressionPlan.load(tmp_path / "bad.yaml")
