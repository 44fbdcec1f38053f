"""Sparsity of a weightless (meta) model is unknown, not 0: None in the tree, null in
`studio inspect --json`, 'unknown' in the table; a subtree holding any meta parameter is
unknown too, and the others keep their exact counts."""

from __future__ import annotations

import json

import torch
from torch import nn

from studio.cli.main import main
from studio.core.model.inspection import inspect_model
from studio.core.model.loaders import LoadRequest
from studio.core.pipelines.opening import load_model


def _config_only_llama(folder):
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         architectures=["LlamaForCausalLM"])
    config.save_pretrained(folder)
    return folder


def _zeros(module: nn.Module) -> int:
    return sum(int((p == 0).sum()) for p in module.parameters())


def test_weightless_model_has_unknown_sparsity_everywhere_it_has_parameters(tmp_path):
    loaded = load_model(LoadRequest(str(_config_only_llama(tmp_path / "cfg"))))
    tree = inspect_model(loaded.module, loaded.input_spec)
    modules = dict(loaded.module.named_modules())
    with_params = [n for n in tree.nodes() if n.total_params]
    assert with_params and tree.root in with_params
    assert all(n.sparsity is None and n.zero_params is None for n in with_params)
    without = [n for n in tree.nodes() if not n.total_params]  # e.g. activations, rotary embedding
    assert without and all(n.sparsity == 0.0 and n.zero_params == 0 for n in without)
    assert all(not any(True for _ in modules[n.name].parameters()) for n in without)
    layers = json.loads(json.dumps(tree.to_dict()))["layers"]
    assert layers[0]["name"] == "" and layers[0]["sparsity"] is None and layers[0]["zero_params"] is None
    assert tree.root.sparsity_text() == "unknown (no weights)"


def test_one_meta_parameter_makes_its_ancestors_unknown_and_leaves_the_rest_exact():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Sequential(nn.Linear(10, 10), nn.ReLU()), nn.Linear(10, 5))
    with torch.no_grad():
        model[0][0].weight[:3] = 0  # 30 zeros
        model[0][0].bias[:2] = 0  # 2 more
    model[1].weight = nn.Parameter(torch.empty(5, 10, device="meta"))
    tree = inspect_model(model, None)
    assert tree["0.0"].zero_params == _zeros(model[0][0]) == 32
    assert tree["0.0"].sparsity == 32 / 110
    assert tree["0"].zero_params == 32 and tree["0"].sparsity == 32 / 110
    assert tree["0.1"].zero_params == 0 and tree["0.1"].sparsity == 0.0  # ReLU: no parameters
    assert tree["1"].zero_params is None and tree["1"].sparsity is None  # meta weight, real bias
    assert tree.root.zero_params is None and tree.root.sparsity is None
    assert tree.root.total_params == 110 + 55  # sizes stay known


def test_tied_meta_weight_stays_unknown_after_the_tie_is_counted_once():
    embed = nn.Embedding(8, 4)
    head = nn.Linear(4, 8, bias=False)
    head.weight = embed.weight = nn.Parameter(torch.empty(8, 4, device="meta"))
    model = nn.Sequential(embed, head)
    tree = inspect_model(model, None)
    assert tree.root.total_params == 32 and tree["1"].shared
    assert tree.root.zero_params is None and tree["0"].zero_params is None and tree["1"].zero_params is None


def test_tied_real_weight_zeros_count_once():
    embed = nn.Embedding(8, 4)
    head = nn.Linear(4, 8)
    with torch.no_grad():
        embed.weight[:2] = 0  # 8 zeros
        head.bias[:1] = 0  # 1 zero
    head.weight = embed.weight
    model = nn.Sequential(embed, head)
    tree = inspect_model(model, None)
    assert tree.root.zero_params == _zeros(model) == 9  # parameters() yields the tied one once
    assert tree.root.sparsity == 9 / (32 + 8)


def test_cli_inspect_of_a_weightless_model_says_unknown(tmp_path, capsys):
    folder = _config_only_llama(tmp_path / "cfg")
    assert main(["inspect", str(folder), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    root = payload["layers"][0]
    assert root["name"] == "" and root["sparsity"] is None and root["zero_params"] is None
    assert all(layer["sparsity"] is None for layer in payload["layers"] if layer["total_params"])
    assert main(["inspect", str(folder)]) == 0
    out = capsys.readouterr().out
    zeros = [line for line in out.splitlines() if line.startswith("Zeros ")]
    assert len(zeros) == 1 and zeros[0].startswith("Zeros   unknown") and "exactly zero" not in out


def test_table_states_the_exact_zero_count():
    from types import SimpleNamespace

    from studio.cli.tables import layer_table

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(100, 30), nn.Linear(30, 2))
    with torch.no_grad():
        model[0].weight[:17] = 0  # 1,700 zeros of 3,092 parameters
    tree = inspect_model(model, None)
    loaded = SimpleNamespace(name="net", kind="file", source="net.py")
    zeros = [line for line in layer_table(loaded, tree).splitlines() if line.startswith("Zeros ")]
    assert _zeros(model) == 1700
    assert zeros == [f"Zeros   1,700 parameters are exactly zero ({100 * 1700 / 3092:.1f}%)"]


def test_projection_of_a_weightless_model_takes_its_weights_as_dense(tmp_path):
    from studio.core.plan import CompressionPlan
    from studio.core.plan.projection import project_plan

    loaded = load_model(LoadRequest(str(_config_only_llama(tmp_path / "cfg"))))
    tree = inspect_model(loaded.module, loaded.input_spec)
    plan = CompressionPlan.from_dict({"version": 1, "rules": [{"layers": "model.layers.*.mlp.*",
                                                               "prune": {"amount": 0.5}}]})
    projection = project_plan(plan, loaded.module, tree)
    assert projection.before.nonzero == tree.total_params
    mlp_weights = sum(m.weight.numel() for n, m in loaded.module.named_modules()
                      if isinstance(m, nn.Linear) and ".mlp." in n)
    assert projection.before.nonzero - projection.after.nonzero == mlp_weights // 2


def test_count_zeros_equals_torch_for_every_dtype_and_layout():
    import pytest

    from studio.core.model.inspection import count_zeros

    torch.manual_seed(0)
    base = torch.randn(64, 48)
    base[base.abs() < 0.5] = 0.0
    base[0, :5] = torch.tensor([-0.0, float("nan"), float("inf"), 1e-45, -float("inf")])
    cases = []
    for dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int64, torch.bool):
        x = base.to(dtype)
        cases += [x, x.t(), x[::3, 1::2], x[:, 5]]
    cases += [nn.Parameter(base.clone()), base.clone().requires_grad_(), torch.zeros(0), torch.tensor(0.0),
              torch.tensor([-0.0])]
    for x in cases:
        expected = x.numel() - int(torch.count_nonzero(x.detach()))
        assert count_zeros(x) == expected, (x.dtype, tuple(x.shape), x.stride())
    assert count_zeros(torch.tensor([-0.0, 0.0, 1.0])) == 2
    assert count_zeros(base) == int((base == 0).sum()) > 0
    with pytest.raises(Exception):
        count_zeros(torch.empty(3, device="meta"))  # no values: callers report unknown instead
