"""The compression pipeline end to end: apply, measure, save, reopen, CLI."""

from __future__ import annotations

import json

import pytest
import torch

from studio.cli.main import main
from studio.core.pipelines.apply import editable_copy
from studio.core.base.cancel import CancelToken, Cancelled
from studio.core.pipelines.compress import compress
from studio.core.base.errors import StudioError
from studio.core.base.events import Finished, LayerDone, Progress, StageStarted
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.plan import CompressionPlan
from studio.core.plan.resolve import resolve

DIGITS_PLAN = {"rules": [
    {"layers": "features.0.0", "prune": {"mode": "structured", "amount": 0.5}},
    {"layers": "classifier.1", "lowrank": {"method": "svd", "rank": 16}},
    {"layers": "features.3.pointwise.0", "prune": {"mode": "2:4"}},
    {"layers": "*", "quantize": {"dtype": "int8", "activations": "dynamic"}},
    {"layers": "classifier.4", "quantize": None},
]}


@pytest.fixture(scope="module")
def digits():
    return load_model(LoadRequest("sample:digits-cnn"))


def run(loaded, data, cancel=None):
    events = list(compress(loaded, CompressionPlan.from_dict(data), cancel=cancel))
    return events, events[-1].result


def test_events_in_order_and_original_untouched(digits):
    before = {k: v.clone() for k, v in digits.module.state_dict().items()}
    events, result = run(digits, DIGITS_PLAN)
    stages = [e.name for e in events if isinstance(e, StageStarted)]
    assert stages == ["validate", "apply", "measure"]
    assert isinstance(events[-1], Finished)
    done = [e.change for e in events if isinstance(e, LayerDone)]
    assert [c.technique for c in done] == sorted((c.technique for c in done),
                                                 key=["lowrank", "prune", "quantize"].index)
    measure = events.index(next(e for e in events if isinstance(e, StageStarted) and e.name == "measure"))
    progress = [e for e in events[:measure] if isinstance(e, Progress)]
    assert progress[-1].step == len(done)
    measured = [e for e in events[measure:] if isinstance(e, Progress)]  # the measure stage has an ETA too
    assert [e.step for e in measured] == list(range(measured[0].total + 1))
    after = digits.module.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    # quantization reached the factors of the low-rank layer, but not the excluded classifier.4
    quantized = {c.name for c in done if c.technique == "quantize"}
    assert {"classifier.1.first", "classifier.1.second"} <= quantized and "classifier.4" not in quantized


def test_report_numbers_are_measured(digits):
    _, result = run(digits, DIGITS_PLAN)
    report = result.report.to_dict()
    compressed = result.compressed
    assert report["before"]["params"] == sum(p.numel() for p in digits.module.parameters())
    assert report["after"]["params"] == sum(p.numel() for p in compressed.parameters())
    assert report["after"]["params"] < report["before"]["params"]
    assert report["after"]["bytes"] < report["before"]["bytes"] / 2  # int8 codes
    assert report["after"]["flops"] < report["before"]["flops"]
    # an aggressive plan without fine-tuning: measured cosine 0.84, top-1 agreement 0.85
    assert 0.7 < report["fidelity"]["cosine"] <= 1.0 + 1e-6
    assert report["fidelity"]["top1_agreement"] >= 0.75
    rows = {row["name"]: row for row in report["layers"] if row["technique"] == "lowrank"}
    assert rows["classifier.1"]["params_after"] == 16 * (512 + 64) + 64
    with torch.no_grad():
        assert compressed(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_untouched_layers_are_shared_not_copied(digits):
    plan = CompressionPlan.from_dict({"rules": [{"layers": "classifier.1", "quantize": {"dtype": "int8"}}]})
    copy = editable_copy(digits.module, resolve(plan, digits.module))
    assert copy.features is digits.module.features  # untouched subtree shared
    assert copy.classifier is not digits.module.classifier
    assert copy.classifier[1] is not digits.module.classifier[1]
    assert copy.classifier[4] is digits.module.classifier[4]


def test_cancel_stops_and_leaves_original(digits):
    token = CancelToken()
    before = {k: v.clone() for k, v in digits.module.state_dict().items()}
    seen = []
    with pytest.raises(Cancelled):
        for event in compress(digits, CompressionPlan.from_dict(DIGITS_PLAN), cancel=token):
            seen.append(event)
            if isinstance(event, LayerDone):
                token.cancel()
    assert sum(isinstance(e, LayerDone) for e in seen) <= 2
    assert all(torch.equal(before[k], v) for k, v in digits.module.state_dict().items())


def test_saved_folder_reopens_with_identical_outputs(digits, tmp_path):
    from studio.core.pipelines.compressed_dir import save_compressed
    from studio.core.model.inspection import inspect_model

    _, result = run(digits, DIGITS_PLAN)
    out = save_compressed(result, tmp_path / "small")
    assert {p.name for p in out.iterdir()} == {"model.safetensors", "recipe.yaml", "report.json", "studio.json"}
    reopened = load_model(LoadRequest(str(out)))
    assert reopened.kind == "compressed"
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(reopened.module(x), result.compressed(x))
    assert inspect_model(reopened.module, reopened.input_spec).total_params == result.report.to_dict()["after"]["params"]
    with pytest.raises(StudioError, match="already exists"):
        save_compressed(result, out)
    save_compressed(result, out, force=True)


def test_torchscript_is_refused_clearly(tmp_path):
    from tests.zoo import TinyMobileNet

    torch.jit.script(TinyMobileNet()).save(str(tmp_path / "m.pt"))
    loaded = load_model(LoadRequest(str(tmp_path / "m.pt")))
    with pytest.raises(StudioError, match="TorchScript.*eager model"):
        list(compress(loaded, CompressionPlan.from_dict({"rules": [{"layers": "*", "prune": {"amount": 0.5}}]})))


def test_cli_compress_json_and_reinspect(tmp_path, capsys):
    recipe = tmp_path / "r.json"
    recipe.write_text(json.dumps(DIGITS_PLAN))
    out = tmp_path / "out"
    assert main(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for side in ("before", "after"):
        assert {"params", "bytes", "compressed_bytes", "flops"} <= report[side].keys()
    assert {"max_abs", "cosine", "top1_agreement"} <= report["fidelity"].keys()
    assert all({"name", "technique", "params_before", "params_after"} <= row.keys() for row in report["layers"])
    assert json.loads((out / "report.json").read_text()) == report
    assert main(["inspect", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total_params"] == report["after"]["params"]


def test_cli_invalid_recipe_lists_every_problem(tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("version: 1\nrules:\n  - layers: nope\n    prune: {amount: 0.5}\n"
                      "  - layers: features.2\n    quantize: {dtype: int8}\n")
    assert main(["compress", "sample:digits-cnn", "--recipe", str(recipe), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "nope" in err and "MaxPool2d" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
