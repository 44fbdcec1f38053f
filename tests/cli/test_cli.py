"""`studio inspect`: table, stable JSON schema, exit code 2 without traceback on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from studio.cli.main import main
from tests import zoo

LAYER_KEYS = {"name", "type", "params", "total_params", "bytes", "flops", "input_shape", "output_shape",
              "sparsity", "shared"}


def run_json(capsys, *argv):
    assert main(["inspect", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_inspect_json_schema(capsys):
    data = run_json(capsys, "sample:digits-cnn")
    assert {"total_params", "total_bytes", "total_flops", "layers"} <= data.keys()
    assert data["total_params"] == 39770
    layers = {layer["name"]: layer for layer in data["layers"]}
    assert all(LAYER_KEYS <= layer.keys() for layer in layers.values())
    conv = layers["features.1.0"]
    assert conv["type"] == "Conv2d" and conv["params"] == 16 * 32 * 9
    assert conv["flops"] == 2 * 32 * 8 * 8 * 16 * 9
    assert conv["output_shape"] == "1x32x8x8"
    assert layers[""]["total_params"] == data["total_params"]


def test_inspect_table(capsys):
    assert main(["inspect", "sample:digits-cnn", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "39.8 k params (39,770)" in out and "features" in out and "classifier" in out
    assert "features.1" not in out and "Conv2d" not in out  # depth 1 hides deeper layers


def test_inspect_input_shape_and_dtype_flags(capsys, factory_file, net_weights):
    data = run_json(capsys, f"{factory_file}:Net", "--weights", str(factory_file.parent / "net.pt"),
                    "--input-shape", "5,12")
    assert data["input_spec"] == "5x12 float32"
    assert {layer["name"]: layer for layer in data["layers"]}["fc1"]["flops"] == 2 * 5 * 12 * 8


def test_inspect_shared_flag_in_json(capsys, tmp_path):
    torch.save(zoo.TiedLM(), tmp_path / "tied.pt")
    data = run_json(capsys, str(tmp_path / "tied.pt"), "--trust", "--input", "1x4 int64 [0,50)")
    shared = {layer["name"] for layer in data["layers"] if layer["shared"]}
    assert shared == {"embed", "lm_head"}
    assert data["total_params"] == zoo.unique_params(zoo.TiedLM())


@pytest.mark.parametrize("argv,fragment", [
    (["inspect", "/no/such/model.pt"], "no such file"),
    (["inspect", "sample:digits-cnn", "--input-shape", "1,3,8,8"], "forward pass failed"),
    (["inspect", "sample:digits-cnn", "--input-shape", "1,x"], "Cannot read a shape"),
    (["inspect", "sample:digits-cnn", "--input-dtype", "floaty"], "Unknown input dtype"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert err.startswith("studio: error: ")


def test_pickle_refused_without_trust(capsys, tmp_path):
    torch.save(zoo.TinyMobileNet(), tmp_path / "full.pt")
    assert main(["inspect", str(tmp_path / "full.pt")]) == 2
    assert "--trust" in capsys.readouterr().err


def test_console_entry_point_exit_code_and_no_traceback(tmp_path):
    bad = tmp_path / "random.bin"
    bad.write_bytes(os.urandom(1000))
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    result = subprocess.run([sys.executable, "-m", "studio", "inspect", str(bad)], capture_output=True, text=True,
                            env=env, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "not a readable PyTorch file" in result.stderr
    listing = subprocess.run([sys.executable, "-m", "studio", "samples"], capture_output=True, text=True, env=env,
                             timeout=300)
    assert "sample:digits-cnn" in listing.stdout and "sample:minilm-sentiment" in listing.stdout


def test_compress_on_a_wrong_input_spec_is_one_clear_line(capsys, tmp_path):
    """compress runs the original before compressing it in place: its forward's failure must read
    as inspection's sentence (exit 2), not as an internal error."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("rules:\n  - {layers: '*', quantize: {dtype: int8}}\n")
    argv = ["compress", "sample:digits-cnn", "--input-shape", "1,3,8,8", "--recipe", str(recipe),
            "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "forward pass failed" in err and "Traceback" not in err and err.startswith("studio: error: ")
    assert not (tmp_path / "out").exists()
