"""The contract every registered technique (and every low-rank method) keeps, checked
generically: nothing here names a technique, so a new one is covered by being registered.

Configs are derived from each config's field metadata: the default, each listed choice, and
each ranged field set inside its range; combinations a technique refuses for a layer must be
refused by the plan check (a PlanError naming the layer), never by a crash in apply.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from studio.core.base.errors import StudioError
from studio.core.base.events import Finished
from studio.core.model.inspection import inspect_model
from studio.core.model.input_spec import InputSpec
from studio.core.model.loaded_model import LoadedModel
from studio.core.model.measure import figures, primary_output
from studio.core.pipelines.compress import compress
from studio.core.plan import CompressionPlan, PlanError
from studio.core.plan.projection import project_plan
from studio.core.plan.resolve import resolve
from studio.core.techniques import all_techniques
from studio.core.techniques.lowrank_math import layer_dims
from studio.core.techniques.lowrank_methods import all_methods
from tests import zoo

TECHNIQUES = all_techniques()
METHODS = all_methods()
INSIDE = 0.3  # a value inside a ranged field's range


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The models are tiny: thread start-up would cost more than the work on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _choices(f: dataclasses.Field) -> tuple:
    choices = f.metadata.get("choices") or ()
    return tuple(choices() if callable(choices) else choices)


def variants(key: str) -> list:
    """The default config, each listed choice, and each of those with one ranged field set."""
    config_type = TECHNIQUES[key].config_type
    fields = dataclasses.fields(config_type)
    base = [{}] + [{f.name: c} for f in fields for c in _choices(f) if c != f.default]
    ranged = [(f.name, f.metadata.get("start", INSIDE)) for f in fields if "range" in f.metadata]
    out = []
    for body in base + [dict(b, **{name: value}) for b in base for name, value in ranged]:
        config = config_type(**body)
        if not config.problems() and config not in out:
            out.append(config)
    return out


def bad_values(key: str) -> list[tuple[str, object]]:
    """(field, value) pairs no config accepts: an unlisted choice, a value past the range."""
    out = []
    for f in dataclasses.fields(TECHNIQUES[key].config_type):
        if _choices(f) and all(isinstance(c, str) or c is None for c in _choices(f)):
            out.append((f.name, "no-such-choice"))
        if "range" in f.metadata:
            out.append((f.name, f.metadata["range"][1] + 1))
    return out


CASES = [(key, config) for key in TECHNIQUES for config in variants(key)]
# Apply is the costly part: one case per distinct summary (what the tree shows of a config).
APPLY_CASES = list({(key, c.summary()): (key, c) for key, c in reversed(CASES)}.values())[::-1]


def _case_id(case) -> str:
    key, config = case
    default = type(config)()
    changed = [f"{f.name}={getattr(config, f.name)}" for f in dataclasses.fields(config)
               if getattr(config, f.name) != getattr(default, f.name)]
    return "-".join([key] + changed)


# --- config data -------------------------------------------------------------------------

@pytest.mark.parametrize("key", list(TECHNIQUES))
def test_every_technique_has_a_usable_default_and_dialog_metadata(key):
    technique = TECHNIQUES[key]
    assert technique.config_type().problems() == []
    assert technique.label and technique.supported_types
    for f in dataclasses.fields(technique.config_type):
        assert f.metadata.get("help"), f"{key}.{f.name} has no help text for its dialog"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_config_round_trips(case, fmt):
    key, config = case
    again = type(config).from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    plan = CompressionPlan.from_dict({"rules": [{"layers": "*", key: config.to_dict()}]})
    assert CompressionPlan.loads(plan.dumps(fmt), fmt).rules[0].techniques[key] == config


@pytest.mark.parametrize("key", list(TECHNIQUES))
def test_bad_values_are_plan_errors_naming_the_field(key):
    model = nn.Sequential(nn.Linear(8, 8))
    cases = bad_values(key) + [("no_such_field", 1)]
    assert len(cases) > 1
    for name, value in cases:
        with pytest.raises(StudioError) as caught:
            resolve(CompressionPlan.from_dict({"rules": [{"layers": "0", key: {name: value}}]}), model)
        assert isinstance(caught.value, PlanError)
        assert name in str(caught.value) and key in str(caught.value), str(caught.value)


# --- apply on a Linear, a Conv2d and a BERT block ---------------------------------------

# Each model lists the layers to try, in order; a technique gets the first it supports.
def _linear():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(32, 48), nn.ReLU(), nn.Linear(48, 10)), InputSpec.parse("2x32"), ("0",)


def _conv():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 1), nn.ReLU(),
                          nn.Conv2d(16, 4, 1))
    return model, InputSpec.parse("1x8x6x6"), ("0",)


def _conv1x1():
    model, spec, _ = _conv()
    return model, spec, ("2",)


def _bert():
    """A small BERT encoder (two layers, random weights) on hidden states."""
    from transformers.models.bert.modeling_bert import BertEncoder

    torch.manual_seed(0)
    encoder = BertEncoder(zoo.tiny_bert_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).eval()
    return encoder, InputSpec.parse("1x8x32"), ("layer.0.intermediate.dense", "layer.0.attention", "layer.0")


MODELS = {"linear": _linear, "conv3x3": _conv, "conv1x1": _conv1x1, "bert": _bert}


def _outcome(key, config, make, others=None):
    """(compressed model or None, projection, spec, original, problems) of one layer's plan (with
    `others`, {key: config}, on the same layer); None for the problems when the techniques share
    none of the model's candidate layers."""
    configs = {key: config, **(others or {})}
    model, spec, layers = make()
    layer = next((n for n in layers if all(TECHNIQUES[k].supports(model.get_submodule(n)) for k in configs)), None)
    if layer is None:
        return None, None, spec, model, None
    plan = CompressionPlan.from_dict({"rules": [{"layers": layer, **{k: c.to_dict() for k, c in configs.items()}}]})
    try:
        resolve(plan, model)
    except PlanError as exc:
        return None, None, spec, model, exc.problems
    loaded = LoadedModel(module=model, name="m", source="m", kind="test", input_spec=spec)
    tree = inspect_model(model, spec)
    projection = project_plan(plan, model, tree, spec.make_inputs())
    try:
        events = list(compress(loaded, plan))
    except PlanError as exc:  # whole-model checks (e.g. the layer feeds the model's output)
        return None, projection, spec, model, exc.problems
    result = [e for e in events if isinstance(e, Finished)][0].result
    return result.compressed, projection, spec, model, []


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("case", APPLY_CASES, ids=_case_id)
def test_apply_keeps_the_model_running_and_the_projection_is_what_is_measured(case, kind):
    key, config = case
    compressed, projection, spec, original, problems = _outcome(key, config, MODELS[kind])
    if problems is None:
        pytest.skip(f"{key} supports no layer of the {kind} model")
    if compressed is None:  # refused: the plan check says which layer and why, before anything runs
        assert problems and all(isinstance(p, str) and p for p in problems)
        return
    args, kwargs = spec.make_inputs()
    with torch.no_grad():
        want = primary_output(original(*args, **kwargs))
        got = primary_output(compressed(*args, **kwargs))
    assert got.shape == want.shape and torch.isfinite(got).all()
    before, after = figures(original, spec), figures(compressed, spec)  # what the report measures
    assert projection.before.params == before.params and projection.after.params == after.params
    assert projection.after.bytes - projection.before.bytes == after.bytes - before.bytes


def _changing(key):
    """A variant that changes something: the first with a ranged field set, else the default."""
    ranged = [f.name for f in dataclasses.fields(TECHNIQUES[key].config_type) if "range" in f.metadata]
    return next((c for c in variants(key) if any(getattr(c, n) != getattr(type(c)(), n) for n in ranged)),
                variants(key)[0])


PAIRS = [(a, b) for i, a in enumerate(TECHNIQUES) for b in list(TECHNIQUES)[i + 1:]]


@pytest.mark.parametrize("kind", ["linear", "conv1x1", "bert"])
@pytest.mark.parametrize("pair", PAIRS, ids="+".join)
def test_two_techniques_on_one_layer_project_what_is_measured(pair, kind):
    """Composed on one layer (e.g. factors that are then quantized), the projection still
    equals what the run measures, or the plan check refuses the combination."""
    a, b = pair
    compressed, projection, spec, original, problems = _outcome(a, _changing(a), MODELS[kind], {b: _changing(b)})
    if problems is None:
        pytest.skip(f"{a} and {b} share no layer of the {kind} model")
    if compressed is None:
        assert problems
        return
    before, after = figures(original, spec), figures(compressed, spec)
    assert projection.after.params == after.params
    assert projection.after.bytes - projection.before.bytes == after.bytes - before.bytes


@pytest.mark.parametrize("key", list(TECHNIQUES))
def test_each_technique_applies_to_every_model_it_supports(key):
    """Some variant of every technique changes each model (Linear, Conv2d, BERT block) that has a
    layer it supports, and every technique supports at least one of them."""
    supported = 0
    for kind, make in MODELS.items():
        outcomes = []
        for config in variants(key):
            compressed, *_, problems = _outcome(key, config, make)
            if problems is None:
                break
            outcomes.append(compressed is not None)
            if compressed is not None:
                break
        else:
            assert any(outcomes), f"no {key} variant applies to the {kind} model"
        supported += bool(outcomes)
    assert supported, f"{key} supports no layer of any contract model"


@pytest.mark.parametrize("key", list(TECHNIQUES))
def test_sweep_settings_are_valid_configs(key):
    """The sensitivity sweep asks each technique for its settings; each names a valid config."""
    technique = TECHNIQUES[key]
    for text in technique.sweep_defaults:
        label, body = technique.sweep_setting(" ".join(text.lower().split()), text)
        assert label and technique.config_type.from_dict(body).problems() == []
    with pytest.raises(StudioError):
        technique.sweep_setting("nonsense", "nonsense")


# --- low-rank methods ----------------------------------------------------------------------

LAYERS = {"linear": lambda: nn.Linear(24, 16), "conv1x1": lambda: nn.Conv2d(12, 20, 1),
          "conv3x3": lambda: nn.Conv2d(6, 10, 3, padding=1), "embedding": lambda: nn.Embedding(40, 24)}


def _example_input(kind: str, module: nn.Module, dims) -> torch.Tensor:
    if kind == "embedding":
        return torch.randint(0, module.num_embeddings, (2, 5))
    return torch.randn(2, *((24,) if kind == "linear" else (dims[1], 5, 5)))


def _fitting(method) -> list[str]:
    return [kind for kind, make in LAYERS.items() if method.problem(make()) is None]


@pytest.mark.parametrize("name", list(METHODS))
def test_method_formulas_match_the_layer_it_builds(name):
    method = METHODS[name]
    assert _fitting(method), f"{name} fits no layer kind"
    for kind in _fitting(method):
        torch.manual_seed(0)
        module = LAYERS[kind]()
        dims = layer_dims(module)
        for rank in (1, 2, method.break_even_rank(dims)):
            ranks = method.single_ranks(dims, rank)
            layer = method.factorize(module, ranks, "auto")
            assert isinstance(layer, method.layer_classes)
            bias = module.bias.numel() if getattr(module, "bias", None) is not None else 0
            assert sum(p.numel() for p in layer.parameters()) == method.factored_params(dims, ranks) + bias
            assert method.factored_params(dims, ranks) < module.weight.numel()
            with torch.no_grad():
                assert method.dense_weight(layer).reshape(module.weight.shape).shape == module.weight.shape
            x = _example_input(kind, module, dims)
            with torch.no_grad():
                assert layer(x).shape == module(x).shape
        assert method.factored_params(dims, method.single_ranks(dims, method.break_even_rank(dims) + 1)) \
            >= module.weight.numel() or method.max_rank(dims) == method.break_even_rank(dims)


@pytest.mark.parametrize("name", list(METHODS))
def test_method_refusals_name_the_layer(name):
    """A method refuses the layer kinds it cannot factorize with a sentence saying what to use."""
    method = METHODS[name]
    for kind, make in LAYERS.items():
        problem = method.problem(make())
        assert problem is None or (name in problem and "use" in problem)
