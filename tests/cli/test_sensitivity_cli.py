"""`studio sensitivity` and `studio plan`: files written, exit 2 with one line on bad input."""

from __future__ import annotations

import json

import pytest

from studio.cli.main import main
from studio.core.plan import CompressionPlan

FAST = ["--technique", "prune,quant", "--layers", "classifier.*", "--settings", "prune=0.5,0.9",
        "--settings", "quant=int8 w+a", "--samples", "40"]


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("sens") / "digits.json"
    assert main(["sensitivity", "sample:digits-cnn", "--data", "digits", *FAST, "--no-cache", "--out", str(out)]) == 0
    return out


def test_sensitivity_writes_the_table(sweep_file, capsys):
    data = json.loads(sweep_file.read_text())
    assert data["samples"] == 40 and data["layers"] == ["classifier.1", "classifier.4"]
    assert {c["setting"] for c in data["cells"]} == {"prune 50%", "prune 90%", "int8 w+a"}


def test_plan_writes_a_recipe_and_verifies_it(sweep_file, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    code = main(["plan", "sample:digits-cnn", "--sensitivity", str(sweep_file), "--target-params", "0.6",
                 "--out", str(recipe), "--verify", "--data", "digits", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["met"] and "measured_drop" in summary and summary["measured_bytes"] > 0
    plan = CompressionPlan.load(recipe)
    assert {r.layers for r in plan.rules} <= {"classifier.1", "classifier.4"} and plan.rules


@pytest.mark.parametrize("argv, message", [
    (["sensitivity", "sample:digits-cnn", "--technique", "distill", "--out", "x.json"], "technique"),
    (["sensitivity", "sample:digits-cnn", "--settings", "prune", "--out", "x.json"], "TECHNIQUE=V"),
    (["sensitivity", "sample:digits-cnn", "--settings", "quant=int3", "--out", "x.json"], "precision"),
    (["sensitivity", "sample:digits-cnn", "--out", "x.txt"], ".json"),
    (["plan", "sample:digits-cnn", "--sensitivity", "missing.json", "--target-size", "2MB", "--out", "r.yaml"],
     "cannot read"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err


def test_plan_refuses_bad_targets(sweep_file, tmp_path, capsys):
    out = str(tmp_path / "r.yaml")
    assert main(["plan", "sample:digits-cnn", "--sensitivity", str(sweep_file), "--target-size", "2 parsecs",
                 "--out", out]) == 2
    assert "not understood" in capsys.readouterr().err
    assert main(["plan", "sample:digits-cnn", "--sensitivity", str(sweep_file), "--target-size", "1KB",
                 "--out", out]) == 2
    assert "cannot be met" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["plan", "sample:digits-cnn", "--sensitivity", str(bad), "--max-drop", "0.01", "--out", out]) == 2
    assert "not a sensitivity result" in capsys.readouterr().err
