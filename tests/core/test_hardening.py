"""Issue 15's hostile inputs, one regression each: exit 2 with one line (never a traceback,
never a silent wrong result), nothing written on failure, `--json` stdout only JSON."""

from __future__ import annotations

import json
import pickle
import textwrap

import pytest
from torch import nn

from studio.cli.main import main
from studio.core.base.errors import StudioError
from studio.core.plan import CompressionPlan, PlanError

BOMB = ("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
        "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nrules: *g\n")
GOOD = "version: 1\nrules:\n  - {layers: classifier.1, prune: {amount: 0.5}}\n"

BAD_RECIPES = {
    "rules: 5": ("rules: 5\n", "rules: expected a list"),
    "prune: 5": ("rules: [{layers: classifier.1, prune: 5}]\n", "rules[0] (classifier.1).prune: expected a mapping"),
    "quantize: int8": ("rules: [{layers: a, quantize: int8}]\n", "got 'int8'"),
    "lowrank: svd": ("rules: [{layers: a, lowrank: svd}]\n", "got 'svd'"),
    "settings list": ("rules: []\nsettings: [1, 2]\n", "settings: expected a mapping"),
    "dtype list": ("rules: [{layers: a, quantize: {dtype: [int8]}}]\n", "quantize.dtype: expected a string"),
    "amount abc": ("rules: [{layers: a, prune: {amount: abc}}]\n", "prune.amount: expected a number, got 'abc'"),
    "amount nan": ("rules: [{layers: a, prune: {amount: .nan}}]\n", "expected a finite number"),
    "rank float": ("rules: [{layers: a, lowrank: {rank: 2.5}}]\n", "lowrank.rank: expected an integer"),
    "group_size 2**40": ("rules: [{layers: a, quantize: {dtype: int4, group_size: 1099511627776}}]\n",
                         "out of range"),
    "version true": ("version: true\nrules: []\n", "version True is not supported"),
    "version 1.0": ("version: 1.0\nrules: []\n", "version 1.0 is not supported"),
    "alias bomb": (BOMB, "expands to more than"),
    "self reference": ("rules: &r [*r]\n", "refers to itself"),
    "nested yaml": ("rules: " + "[" * 5000 + "]" * 5000 + "\n", "nests deeper"),
    "python tag": ("!!python/object/apply:os.system ['echo pwned']\n", "not valid YAML"),
    "control chars": ("\x00\x01", "not valid YAML"),
    "data not a string": ("rules: []\nsettings: {data: 5}\n", "settings.data: expected a data spec"),
    "non-string keys": ("{1: 2}\n", "Unknown recipe key"),
    "2 documents": ("rules: []\n---\nrules: []\n", "not valid YAML"),
    "unknown technique": ("rules: [{layers: a, sparsify: {}}]\n", "unknown technique 'sparsify'"),
    "bad regex": ("rules: [{layers: 're:(', prune: {}}]\n", "invalid regex"),
}


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("studio:")]
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    return lines[0]


def _compress(tmp_path, recipe_text: str, *extra: str, suffix: str = ".yaml") -> tuple[int, object]:
    recipe = tmp_path / f"recipe{suffix}"
    recipe.write_text(recipe_text)
    return main(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(tmp_path / "out"), *extra])


@pytest.mark.parametrize("name", sorted(BAD_RECIPES))
def test_bad_recipes_exit_2_with_one_line_and_write_nothing(capsys, tmp_path, name):
    text, fragment = BAD_RECIPES[name]
    assert _compress(tmp_path, text) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("studio: error: ") and fragment in line
    assert not (tmp_path / "out").exists()


def test_deep_json_recipe(capsys, tmp_path):
    assert _compress(tmp_path, '{"rules": ' + "[" * 100000 + "]" * 100000 + "}", suffix=".json") == 2
    assert "nests deeper" in _one_error_line(capsys.readouterr().err)


def test_problems_are_all_reported_with_paths():
    with pytest.raises(PlanError) as info:
        CompressionPlan.loads("rules:\n  - {layers: a, prune: {amount: abc}}\n  - {layers: b, prune: 5}\n"
                              "  - {layers: c, quantize: {dtype: int8, per_channel: maybe}}\n")
    assert info.value.problems == [
        "rules[0] (a).prune.amount: expected a number, got 'abc'",
        "rules[1] (b).prune: expected a mapping of settings (or null/false to exclude), got 5",
        "rules[2] (c).quantize.per_channel: expected true or false, got 'maybe'",
    ]


def test_lowrank_false_excludes_and_true_means_defaults():
    from studio.core.plan.resolve import resolve

    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64))
    plan = CompressionPlan.loads("rules:\n  - {layers: '*', lowrank: {rank: 4}}\n  - {layers: '0', lowrank: false}\n")
    assert plan.rules[1].techniques == {"lowrank": None}
    assert set(resolve(plan, model)["lowrank"]) == {"2"}  # layer 0 excluded, never SVD'd
    plan = CompressionPlan.loads("rules: [{layers: '0', prune: true}]\n")
    assert plan.rules[0].techniques["prune"] == CompressionPlan.loads("rules: [{layers: '0', prune: {}}]\n").rules[0].techniques["prune"]


def test_long_values_are_cut_in_messages(capsys, tmp_path):
    name = "a" * 500_000  # a 5 MB recipe is refused by size before parsing
    assert _compress(tmp_path, f"rules: [{{layers: '{name}', prune: {{amount: 0.5}}}}]\n") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "too long" in line and len(line) < 600
    assert _compress(tmp_path, f"rules: [{{layers: '{'b' * 5_000_000}'}}]\n") == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "too large for a recipe" in line and len(line) < 600


def test_catastrophic_regex_fails_fast(capsys, tmp_path):
    import time

    start = time.perf_counter()
    code = _compress(tmp_path, "rules: [{layers: 're:(x+x+)+y', prune: {amount: 0.5}}]\n")
    assert code == 2 and time.perf_counter() - start < 30
    _one_error_line(capsys.readouterr().err)


def test_regex_timeout_is_a_plan_problem(monkeypatch):
    from studio.core import plan as plan_module
    from studio.core.plan.resolve import resolve_with_problems

    class Slow:
        def fullmatch(self, name, timeout=None):
            raise TimeoutError

    monkeypatch.setattr(plan_module, "compile_regex", lambda pattern: Slow())
    plan = CompressionPlan.loads("rules: [{layers: 're:x', prune: {amount: 0.5}}, {layers: '0', prune: {amount: 0.5}}]\n")
    assignments, problems = resolve_with_problems(plan, nn.Sequential(nn.Linear(4, 4)))
    assert any("takes too long to match" in p for p in problems)
    assert set(assignments["prune"]) == {"0"}


@pytest.mark.parametrize("argv,fragment", [
    (["--input-shape", "100000,100000,100000"], "limited to"),
    (["--input-shape", "9" * 5000], "characters long"), (["--input-shape", "9" * 30], "far too large"),
    (["--input-shape", ",".join(["1"] * 12)], "dimensions"),
    (["--input", "1x4 int64 [5,2)"], "range [5,2) is empty"),
    (["--input", "1x4 int64 [5,5)"], "range [5,5) is empty"),
    (["--input", "1x4 int64 [0,99999999999999999999)"], "does not fit int64"),
    (["--input", "1x4 int64 [" + "9" * 40 + ",2)"], "overflows"),
    (["--input", "1x4 int8 [0,300)"], "does not fit int8"),
])
def test_bad_input_specs(capsys, argv, fragment):
    assert main(["inspect", "sample:digits-cnn", *argv]) == 2
    assert fragment in _one_error_line(capsys.readouterr().err)


FACTORY = textwrap.dedent('''
    import os, sys
    import torch
    from torch import nn
    {prelude}
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            {init}
            self.conv = nn.Conv2d({channels}, 4, 3, padding=1)
            self.fc = nn.Linear(4 * 8 * 8, 10)
        def forward(self, x):
            {forward}
            return self.fc(torch.relu(self.conv(x)).flatten(1))
    INPUT_SPEC = "1x{channels}x8x8 float32"
''')


def _factory(tmp_path, name, prelude="", init="pass", forward="pass", channels=1) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(FACTORY.format(prelude=prelude, init=init, forward=forward, channels=channels))
    return f"{path}:Net"


@pytest.mark.parametrize("where", ["prelude", "init"])
def test_sys_exit_in_model_code_is_an_error(capsys, tmp_path, where):
    model = _factory(tmp_path, "exits", **{where: "sys.exit(3)"})
    assert main(["inspect", model]) == 2
    assert "sys.exit(3)" in _one_error_line(capsys.readouterr().err)


def test_raw_pickle_refused_without_a_warning(capsys, tmp_path):
    path = tmp_path / "raw.pkl"
    path.write_bytes(pickle.dumps(nn.Linear(2, 2)))
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("studio: error: ") and "Warning" not in err


def test_unexpected_errors_are_one_bug_line_and_debug_shows_the_traceback(capsys, monkeypatch):
    import studio.core.pipelines.opening as open_pipeline

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(open_pipeline, "load_model", boom)
    assert main(["inspect", "sample:digits-cnn"]) == 1
    line = _one_error_line(capsys.readouterr().err)
    assert "RuntimeError: boom" in line and "bug" in line and "--debug" in line
    assert main(["--debug", "inspect", "sample:digits-cnn"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_cancel_escaping_a_pipeline_exits_130(capsys, monkeypatch):
    import studio.core.pipelines.opening as open_pipeline
    from studio.core.base.cancel import Cancelled

    def cancelled(*args, **kwargs):
        raise Cancelled()

    monkeypatch.setattr(open_pipeline, "load_model", cancelled)
    assert main(["inspect", "sample:digits-cnn"]) == 130
    assert _one_error_line(capsys.readouterr().err) == "studio: cancelled; nothing was written"


# --- output paths, checked before any work -------------------------------------------------

def test_file_system_errors_are_user_errors(capsys):
    assert main(["inspect", "m" * 5000 + ".pt"]) == 2
    assert "too long" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("case", ["under a file", "long name", "long path", "proc", "taken folder",
                                  "forced foreign folder", "taken file"])
def test_compress_out_checked_before_the_model_loads(capsys, tmp_path, monkeypatch, case):
    import studio.core.model.loaders as loaders

    monkeypatch.setattr(loaders, "load_model", lambda *a, **k: pytest.fail("loaded before checking --out"))
    (tmp_path / "file").write_text("x")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("keep")
    out, extra = {
        "under a file": (tmp_path / "file" / "out", []), "long name": (tmp_path / ("n" * 300), []),
        "long path": (tmp_path / "/".join(["d" * 200] * 25), []), "proc": ("/proc/studio-out", []),
        "taken folder": (tmp_path / "taken", []), "forced foreign folder": (tmp_path / "taken", ["--force"]),
        "taken file": (tmp_path / "file", []),
    }[case]
    recipe = tmp_path / "r.yaml"
    recipe.write_text(GOOD)
    assert main(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(out), *extra]) == 2
    _one_error_line(capsys.readouterr().err)
    assert (tmp_path / "taken" / "keep.txt").read_text() == "keep" and (tmp_path / "file").read_text() == "x"


def test_export_out_naming_a_folder(capsys, tmp_path):
    (tmp_path / "m.onnx").mkdir()
    assert main(["export", "sample:digits-cnn", "--format", "onnx", "--out", str(tmp_path / "m.onnx"), "--force"]) == 2
    assert "is a folder" in _one_error_line(capsys.readouterr().err)


def test_compress_force_over_a_file_leaves_nothing_behind(capsys, tmp_path):
    target = tmp_path / "model"
    target.write_text("old")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("rules: []\n")
    assert main(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(target), "--force",
                 "--json"]) == 0
    assert (target / "studio.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "r.yaml"]


# --- data ----------------------------------------------------------------------------

def _data_error(capsys, tmp_path, spec: str, model: str = "sample:digits-cnn") -> str:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("rules: []\n")
    assert main(["compress", model, "--recipe", str(recipe), "--out", str(tmp_path / "out"), "--data", spec]) == 2
    assert not (tmp_path / "out").exists()
    return _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("spec,fragment", [
    ("digits:extra", "takes no argument"), ("random:abc", "random:N"), ("random:0", "random:N"),
    ("sample:x", "takes no argument"),
])
def test_data_spec_arguments_are_never_ignored(capsys, tmp_path, spec, fragment):
    assert fragment in _data_error(capsys, tmp_path, spec)


def test_random_n_gives_n_samples():
    from studio.core.data.sources import open_dataset
    from studio.core.pipelines.opening import LoadRequest, load_model

    assert len(open_dataset("random:5", load_model(LoadRequest("sample:digits-cnn")))) == 5


def test_too_few_rows_wrong_channels_and_labels(capsys, tmp_path):
    import numpy as np
    from PIL import Image

    np.save(tmp_path / "none.npy", np.zeros((0, 1, 8, 8), dtype=np.float32))
    assert "0 row(s)" in _data_error(capsys, tmp_path, f"tensors:{tmp_path / 'none.npy'}")
    three = _factory(tmp_path, "three", channels=3)
    assert "does not fit" in _data_error(capsys, tmp_path, "digits", three)
    for label in range(12):
        (tmp_path / "imgs" / f"c{label:02d}").mkdir(parents=True)
        Image.new("L", (8, 8), color=label * 10).save(tmp_path / "imgs" / f"c{label:02d}" / "a.png")
    assert "outside the model's 10 classes" in _data_error(capsys, tmp_path, f"imagefolder:{tmp_path / 'imgs'}")


def test_two_rows_split_into_train_and_validation():
    import numpy as np
    import torch

    from studio.core.data.sources import split_indices

    train, val = split_indices(2)
    assert len(train) == 1 and len(val) == 1 and set(torch.cat([train, val]).tolist()) == {0, 1}
    assert np.array_equal(*split_indices(1))


def test_image_bomb_refused(capsys, tmp_path, monkeypatch):
    from PIL import Image

    (tmp_path / "imgs" / "a").mkdir(parents=True)
    Image.new("L", (8, 8)).save(tmp_path / "imgs" / "a" / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 64 pixels: past PIL's warning and error thresholds
    assert "too large to decode safely" in _data_error(capsys, tmp_path, f"imagefolder:{tmp_path / 'imgs'}")


def test_csv_rows_without_label_and_a_folder_without_tokenizer(capsys, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    BertForSequenceClassification(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                             intermediate_size=16, num_labels=2)).save_pretrained(tmp_path / "bert")
    (tmp_path / "d.csv").write_text("text,label\nhello there\ngood film,1\n")
    assert "have no label" in _data_error(capsys, tmp_path, f"csv:{tmp_path / 'd.csv'}", str(tmp_path / "bert"))
    (tmp_path / "d.csv").write_text("text,label\nhello there,0\ngood film,1\n")
    assert "no usable tokenizer" in _data_error(capsys, tmp_path, f"csv:{tmp_path / 'd.csv'}", str(tmp_path / "bert"))


# --- --json stdout --------------------------------------------------------------------

def test_json_stdout_is_json_when_model_code_prints(capfd, tmp_path):
    model = _factory(tmp_path, "noisy", prelude="print('import'); os.write(1, b'raw import\\n')",
                     init="print('build'); os.write(1, b'raw build\\n')",
                     forward="print('forward'); os.write(1, b'raw forward\\n')")
    assert main(["inspect", model, "--json"]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out)["total_params"] > 0
    assert "raw import" in err and "build" in err and "raw forward" in err
    recipe = tmp_path / "r.yaml"
    recipe.write_text("rules: [{layers: fc, prune: {amount: 0.5}}]\n")
    assert main(["compress", model, "--recipe", str(recipe), "--out", str(tmp_path / "o"), "--json"]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out)["layers"][0]["name"] == "fc" and "raw forward" in err


def test_plan_error_without_cli_keeps_its_lines():
    with pytest.raises(StudioError) as info:
        CompressionPlan.loads("rules: [{layers: a, prune: 5}, {layers: b, prune: 6}]\n")
    assert str(info.value).count("\n  - ") == 2  # the window lists them; the CLI joins them
