"""Large models: weights-free (meta device) inspection against real inspection, the what-if
plan on a model never downloaded, the one refusal for work needing weights, and FLOPs counted
on a meta copy equal to a real forward's."""

from __future__ import annotations

import json

import pytest
import torch

from studio.core.base.errors import StudioError
from studio.core.model.inspection import inspect_model
from studio.core.model.loaders import LoadRequest, is_meta, require_weights
from studio.core.pipelines.opening import load_model


def _tiny_llama(folder, weights: bool = True):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=True)
    torch.manual_seed(0)
    if weights:
        LlamaForCausalLM(config).save_pretrained(folder)
    else:
        config.architectures = ["LlamaForCausalLM"]
        config.save_pretrained(folder)
    return folder


def _figures(tree):
    return [(n.name, n.type, n.total_params, n.bytes, n.flops, n.output_shape, n.shared) for n in tree.nodes()]


def test_meta_inspection_equals_real_inspection(tmp_path):
    folder = _tiny_llama(tmp_path / "llama")
    real = load_model(LoadRequest(str(folder)))
    meta = load_model(LoadRequest(str(folder), meta=True))
    assert not is_meta(real) and is_meta(meta)
    assert all(p.is_meta for p in meta.module.parameters())
    real_tree = inspect_model(real.module, real.input_spec)
    meta_tree = inspect_model(meta.module, meta.input_spec)
    assert _figures(meta_tree) == _figures(real_tree)
    assert meta_tree.total_params == sum(p.numel() for p in real.module.parameters()) == real_tree.total_params
    assert real_tree.total_flops > 0 and real_tree["lm_head"].shared


def test_config_only_folder_opens_on_meta_device(tmp_path):
    folder = _tiny_llama(tmp_path / "config-only", weights=False)
    assert [p.name for p in folder.iterdir()] == ["config.json"]
    loaded = load_model(LoadRequest(str(folder)))
    assert is_meta(loaded) and any("without weights" in note for note in loaded.notes)
    with pytest.raises(StudioError, match="opened without weights"):
        require_weights(loaded, "compressed")


def test_meta_flops_equal_a_real_forward_with_attention_counted(tmp_path):
    """The real forward under torch's counter plus CPU attention (two bmm per layer, formula)
    equals what inspection counts on its meta copy."""
    from torch.utils.flop_counter import FlopCounterMode

    loaded = load_model(LoadRequest(str(_tiny_llama(tmp_path / "llama"))))
    args, kwargs = loaded.example_inputs()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        loaded.module(*args, **kwargs)
    seq, hidden, layers = kwargs["input_ids"].shape[1], 32, 2
    attention = layers * 2 * (2 * seq * seq * hidden)
    tree = inspect_model(loaded.module, loaded.input_spec)
    assert tree.total_flops == counter.get_total_flops() + attention
    assert all(not p.is_meta for p in loaded.module.parameters())  # the original is untouched


def test_what_if_projection_on_a_meta_model(tmp_path):
    from studio.core.plan import CompressionPlan
    from studio.core.plan.projection import project_plan

    loaded = load_model(LoadRequest(str(_tiny_llama(tmp_path / "cfg", weights=False))))
    tree = inspect_model(loaded.module, loaded.input_spec)
    linear_bytes = sum(m.weight.numel() * 4 for n, m in loaded.module.named_modules()
                       if isinstance(m, torch.nn.Linear) and n.startswith("model.layers"))
    for dtype in ("int8", "int4"):
        plan = CompressionPlan.from_dict({"version": 1, "rules": [{"layers": "model.layers.*", "quantize": {
            "dtype": dtype, **({"group_size": 8} if dtype == "int4" else {})}}]})
        projection = project_plan(plan, loaded.module, tree)
        assert projection.before.bytes == tree.total_bytes
        assert 0 < projection.after.bytes < projection.before.bytes
        saved = projection.before.bytes - projection.after.bytes
        assert saved < linear_bytes  # only the layers' weights shrink (scales are added back)
    pruned = project_plan(CompressionPlan.from_dict({"version": 1, "rules": [
        {"layers": "model.layers.*.mlp.*", "prune": {"amount": 0.5}}]}), loaded.module, tree)
    assert pruned.after.nonzero < pruned.before.nonzero


def test_cli_meta_inspect_and_compress_refusal(tmp_path, capsys):
    from studio.cli.main import main

    folder = _tiny_llama(tmp_path / "llama")
    assert main(["inspect", str(folder), "--meta", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["total_params"] == sum(p.numel() for p in load_model(LoadRequest(str(folder))).module.parameters())
    assert any("without weights" in note for note in payload["notes"])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("version: 1\nrules:\n  - layers: '*'\n    quantize: {dtype: int8}\n")
    config_only = _tiny_llama(tmp_path / "cfg", weights=False)
    code = main(["compress", str(config_only), "--recipe", str(recipe), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "opened without weights" in err and "Traceback" not in err
    assert main(["inspect", "sample:digits-cnn", "--meta"]) == 2
    assert "--meta builds a model" in capsys.readouterr().err


def test_pipelines_refuse_a_weightless_model_before_any_work(tmp_path):
    """The window calls the pipelines directly (not through the CLI's check): compress, run and
    export each refuse a meta model with the one sentence, before touching it."""
    from studio.core.base.errors import StudioError
    from studio.core.pipelines.compress import compress
    from studio.core.pipelines.export import ExportRequest, export
    from studio.core.pipelines.opening import LoadRequest, load_model
    from studio.core.plan import CompressionPlan

    loaded = load_model(LoadRequest(str(_tiny_llama(tmp_path / "cfg", weights=False))))
    plan = CompressionPlan.from_dict({"rules": [{"layers": "*", "quantize": {"dtype": "int8"}}]})
    for events in (compress(loaded, plan), export(loaded, ExportRequest("onnx", tmp_path / "m.onnx"))):
        with pytest.raises(StudioError, match="without weights"):
            list(events)
    assert not (tmp_path / "m.onnx").exists()
