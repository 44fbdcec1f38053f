"""report.json records the layers pattern rules skip (their technique cannot take them), and
the CLI's summary line counts applied changes, layers a technique left as they were and those
pattern skips apart; reports written before the field existed still load."""

from __future__ import annotations

import json

import pytest
from torch import nn

from studio.cli.main import main
from studio.cli.tables import changes_line
from studio.core.base.events import Finished
from studio.core.pipelines.compress import compress
from studio.core.pipelines.compressed_dir import save_compressed
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.plan import CompressionPlan
from studio.core.plan.resolve import resolve_plan
from studio.core.report.compression import CompressionReport, PatternSkip, RunReport, read_report

STAR_STRUCTURED = {"layers": "*", "prune": {"mode": "structured", "amount": 0.5}}
SAVES_NOTHING = {"layers": "classifier.4", "lowrank": {"method": "svd", "energy": 0.999}}  # 10x64: rank ~10


@pytest.fixture(scope="module")
def digits():
    return load_model(LoadRequest("sample:digits-cnn"))


@pytest.fixture(scope="module")
def result(digits):
    plan = CompressionPlan.from_dict({"rules": [STAR_STRUCTURED, SAVES_NOTHING]})
    events = list(compress(digits, plan))
    assert isinstance(events[-1], Finished)
    return plan, events[-1].result


def test_report_records_each_pattern_skip(digits, result):
    plan, res = result
    report = res.report
    weighted = [n for n, m in digits.module.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    depthwise = [n for n, m in digits.module.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert depthwise == ["features.3.depthwise.0"]
    skipped = {(s.layer, s.technique) for s in report.pattern_skips}
    assert skipped == {("features.3.depthwise.0", "prune"), ("classifier.4", "prune")}  # + the output layer
    pruned = {row.name for row in report.changed_layers if row.technique == "prune"}
    assert pruned == set(weighted) - {"features.3.depthwise.0", "classifier.4"}
    resolution = resolve_plan(plan, digits.module, digits.example_inputs())
    assert {(s.layer, s.technique): s.reason for s in report.pattern_skips} == {
        (layer, key): reason for key, layers in resolution.skipped.items() for layer, reason in layers.items()}
    assert "depthwise/grouped conv" in next(s.reason for s in report.pattern_skips if s.layer == depthwise[0])


def test_summary_line_counts_changes_unchanged_and_pattern_skips_apart(result):
    report = result[1].report
    unchanged = [row for row in report.layers if row.skipped]
    assert [(row.name, row.technique) for row in unchanged] == [("classifier.4", "lowrank")]
    assert len(report.changed_layers) == 4
    assert changes_line(report) == ("4 layer change(s), 1 left unchanged by their technique, 2 matched by a "
                                    "pattern but skipped (the technique cannot take them)")


def test_pattern_skips_round_trip_and_old_reports_load(result, tmp_path):
    report = result[1].report
    plain = json.loads(json.dumps(report.to_dict()))
    assert [set(item) for item in plain["pattern_skips"]] == [{"layer", "technique", "reason"}] * 2
    assert CompressionReport.from_dict(plain) == report
    del plain["pattern_skips"]  # a report.json written before the field existed
    old = RunReport.from_dict(plain)
    assert old.pattern_skips == () and changes_line(old).endswith(", 0 matched by a pattern but skipped "
                                                                 "(the technique cannot take them)")
    out = save_compressed(result[1], tmp_path / "small")
    assert read_report(out / "report.json").pattern_skips == report.pattern_skips
    assert load_model(LoadRequest(str(out))).extras["report"].pattern_skips == report.pattern_skips
    assert isinstance(report.pattern_skips[0], PatternSkip)


def test_cli_summary_and_report_json(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("rules:\n  - {layers: '*', prune: {mode: structured, amount: 0.5}}\n")
    assert main(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert ("4 layer change(s), 0 left unchanged by their technique, 2 matched by a pattern but skipped "
            "(the technique cannot take them)") in out.splitlines()
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert sorted(s["layer"] for s in saved["pattern_skips"]) == ["classifier.4", "features.3.depthwise.0"]
