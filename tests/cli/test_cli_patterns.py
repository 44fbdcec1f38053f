"""`studio compress` with pattern rules: skipped layers are one warning line and the run goes on
(exit 0); an exact name the technique cannot take, or a pattern left with no layer, is exit 2."""

from __future__ import annotations

import json

from studio.cli.main import main


def _compress(tmp_path, rules: str, *extra: str) -> int:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("rules:\n" + rules)
    return main(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(tmp_path / "out"), *extra])


def test_star_rule_skips_with_one_warning_and_runs(capsys, tmp_path):
    assert _compress(tmp_path, "  - {layers: '*', prune: {mode: structured, amount: 0.5}}\n", "--json") == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert warnings == ["warning: rule 1 (*): skipped 2 layer(s) that pruning (structured 50% l2) cannot take "
                        "(4 taken) — 1: a depthwise/grouped conv follows its input channels (features.3.depthwise.0); "
                        "1: structured pruning would remove outputs of the model's final layer (its classes or "
                        "features) (classifier.4)"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    pruned = {row["name"] for row in report["layers"] if row["technique"] == "prune"}
    assert pruned == {"features.0.0", "features.1.0", "features.3.pointwise.0", "classifier.1"}


def test_exact_name_and_empty_pattern_exit_2(capsys, tmp_path):
    assert _compress(tmp_path, "  - {layers: classifier.4, prune: {mode: structured, amount: 0.5}}\n") == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("studio: error: ") and "Traceback" not in err
    assert "layer classifier.4: prune: structured pruning would remove outputs of the model's final layer" in err
    assert _compress(tmp_path, "  - {layers: '*.depthwise.*', prune: {mode: structured, amount: 0.5}}\n") == 2
    err = capsys.readouterr().err
    assert "rule 1 (*.depthwise.*): matches no layer that pruning (structured 50% l2) can take — 1: a " \
           "depthwise/grouped conv follows its input channels (features.3.depthwise.0)" in err
    assert not (tmp_path / "out").exists()
