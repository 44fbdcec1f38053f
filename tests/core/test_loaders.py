"""Every model source, and every bad input giving one clear StudioError."""

from __future__ import annotations

import json
import os

import pytest
import torch

from studio.core.base.errors import StudioError, UntrustedPickleError
from studio.core.model.input_spec import InputSpec
from studio.core.model.inspection import inspect_model
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.pipelines.opening import open_model
from studio.core.base.events import Finished, StageStarted
from tests import zoo


def load(source, **kw):
    return load_model(LoadRequest(source, **kw))


def test_digits_sample_loads_in_eval_mode():
    loaded = load("sample:digits-cnn")
    assert loaded.kind == "sample" and loaded.eager and not loaded.module.training
    assert str(loaded.input_spec) == "1x1x8x8 float32"
    assert zoo.unique_params(loaded.module) == inspect_model(loaded.module, loaded.input_spec).total_params


def test_unknown_sample_lists_available():
    with pytest.raises(StudioError, match="sample:digits-cnn"):
        load("sample:nope")


@pytest.fixture
def hf_dir(tmp_path):
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    model = BertForSequenceClassification(zoo.tiny_bert_config(num_labels=3))
    model.save_pretrained(tmp_path / "tiny-bert")
    return tmp_path / "tiny-bert", model


def test_hf_directory_offline(hf_dir):
    path, original = hf_dir
    loaded = load(str(path))
    assert loaded.kind == "huggingface" and type(loaded.module).__name__ == "BertForSequenceClassification"
    assert loaded.input_spec.keyword
    assert [t.name for t in loaded.input_spec.tensors] == ["input_ids", "attention_mask"]
    assert loaded.input_spec.tensors[0].high == 120  # token ids stay inside the vocabulary
    tree = inspect_model(loaded.module, loaded.input_spec)
    assert tree.total_params == zoo.unique_params(original)
    assert tree.root.output_shape  # forward ran
    for name, tensor in original.state_dict().items():
        assert torch.equal(tensor, loaded.module.state_dict()[name])


def test_hf_remote_code_needs_opt_in(hf_dir):
    path, _ = hf_dir
    config = json.loads((path / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "modeling_evil.EvilModel"}
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(StudioError, match="--trust-remote-code"):
        load(str(path))


def test_hf_bad_folders(tmp_path, hf_dir):
    path, _ = hf_dir
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StudioError, match="empty"):
        load(str(empty))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("hi")
    with pytest.raises(StudioError, match="no config.json"):
        load(str(tmp_path / "other"))
    (path / "model.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(StudioError, match="could not load the weights"):
        load(str(path))
    (path / "config.json").write_text("{not json")
    with pytest.raises(StudioError, match="not valid JSON"):
        load(str(path))


def test_factory_class_and_function(factory_file):
    for name in ("Net", "make_net"):
        loaded = load(f"{factory_file}:{name}")
        assert loaded.kind == "factory"
        assert str(loaded.input_spec) == "2x12 float32"  # declared by the file's INPUT_SPEC
        assert inspect_model(loaded.module, loaded.input_spec).total_params == 12 * 8 + 8 + 8 * 3 + 3


@pytest.mark.parametrize("weights", ["net.safetensors", "net.pt"])
def test_factory_with_weights(factory_file, net_weights, weights):
    loaded = load(f"{factory_file}:Net", weights=str(factory_file.parent / weights))
    for name, tensor in net_weights.items():
        assert torch.equal(loaded.module.state_dict()[name], tensor)


def test_factory_weights_mismatch_names_keys(factory_file, tmp_path):
    from safetensors.torch import save_file

    save_file({"fc1.weight": torch.zeros(3, 3)}, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(StudioError, match=r"missing: .*fc1.bias.*shape mismatch: fc1.weight"):
        load(f"{factory_file}:Net", weights=str(tmp_path / "wrong.safetensors"))


@pytest.mark.parametrize("name,match", [
    ("Missing", r"has no 'Missing'.*defines: .*Net.*make_net"),
    ("NUMBER", "not a class or function"),
    ("not_a_model", "returned a int, not a torch.nn.Module"),
    ("broken", "factory exploded"),
])
def test_factory_errors(factory_file, name, match):
    with pytest.raises(StudioError, match=match):
        load(f"{factory_file}:{name}")


def test_factory_file_problems(tmp_path):
    with pytest.raises(StudioError, match="no such Python file"):
        load(f"{tmp_path}/absent.py:Net")
    bad = tmp_path / "bad.py"
    bad.write_text("def oops(:\n")
    with pytest.raises(StudioError, match="syntax error"):
        load(f"{bad}:oops")
    with pytest.raises(StudioError, match="name the factory too"):
        load(str(bad))


def test_weights_only_for_factories(tmp_path):
    with pytest.raises(StudioError, match="applies to a Python factory"):
        load("sample:digits-cnn", weights=str(tmp_path / "w.safetensors"))


def test_torchscript_file(tmp_path):
    model = zoo.TinyMobileNet().eval()
    torch.jit.script(model).save(str(tmp_path / "m.pt"))
    loaded = load(str(tmp_path / "m.pt"), input_spec=InputSpec.parse("1x3x16x16 float32"))
    assert loaded.kind == "torchscript" and not loaded.eager
    assert any("eager model" in note for note in loaded.notes)
    assert inspect_model(loaded.module, loaded.input_spec).total_params == zoo.unique_params(model)


def test_pickled_model_refused_then_trusted(tmp_path):
    model = zoo.TinyMobileNet().eval()
    torch.save(model, tmp_path / "full.pt")
    with pytest.raises(UntrustedPickleError, match="arbitrary code"):
        load(str(tmp_path / "full.pt"))
    loaded = load(str(tmp_path / "full.pt"), trust=True)
    assert loaded.kind == "pickle" and zoo.unique_params(loaded.module) == zoo.unique_params(model)
    assert str(loaded.input_spec) == "1x3x224x224 float32"  # guessed from the first conv


def test_bare_weights_need_an_architecture(tmp_path, net_weights):
    for name in ("net.pt", "net.safetensors"):
        with pytest.raises(StudioError, match="only weights .* architecture"):
            load(str(tmp_path / name))


def test_corrupt_and_odd_files(tmp_path):
    model = zoo.TinyMobileNet().eval()
    torch.jit.script(model).save(str(tmp_path / "ts.pt"))
    torch.save(model, tmp_path / "pickle.pt")
    cases = {
        "random.pt": os.urandom(4096),
        "truncated_ts.pt": (tmp_path / "ts.pt").read_bytes()[:2000],
        "truncated_pickle.pt": (tmp_path / "pickle.pt").read_bytes()[:1500],
        "text.pth": b"hello, I am not a model\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(StudioError) as info:
            load(str(tmp_path / name), trust=True)
        assert str(tmp_path / name) in str(info.value)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(StudioError, match="empty"):
        load(str(tmp_path / "empty.pt"))
    with pytest.raises(StudioError, match="no such file"):
        load(str(tmp_path / "missing.pt"))


def test_explicit_input_spec_and_dtype_override():
    loaded = load("sample:digits-cnn", input_spec=InputSpec.parse("4x1x8x8 float32"))
    assert loaded.input_spec.tensors[0].shape == (4, 1, 8, 8)
    assert load("sample:digits-cnn", input_dtype="float64").input_spec.tensors[0].dtype == "float64"


def test_open_pipeline_events_and_forward_failure():
    events = list(open_model(LoadRequest("sample:digits-cnn")))
    assert [type(e) for e in events] == [StageStarted, StageStarted, Finished]
    assert [e.name for e in events[:2]] == ["load", "inspect"]
    assert events[-1].result.tree.total_params == 39770
    with pytest.raises(StudioError, match="forward pass failed"):
        list(open_model(LoadRequest("sample:digits-cnn", input_spec=InputSpec.parse("1x3x8x8 float32"))))
