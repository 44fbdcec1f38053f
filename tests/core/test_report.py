"""The typed reports on real digits runs: one to_dict/from_dict round trip each, the JSON keys the
files have always had (README: report.json, model.onnx.report.json), and the rows both front ends
show equal to figures computed here independently."""

from __future__ import annotations

import json

import pytest

from studio.cli.tables import compression_summary, export_summary
from studio.core.base.events import Finished
from studio.core.base.units import format_bytes, format_count, format_percent
from studio.core.data.sources import open_dataset
from studio.core.pipelines.compress import compress
from studio.core.pipelines.compressed_dir import save_compressed
from studio.core.pipelines.export import ExportRequest, export
from studio.core.pipelines.finetune import FinetuneSettings
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.pipelines.run import run
from studio.core.plan import CompressionPlan
from studio.core.report.compression import CompressionReport, RunReport, read_report
from studio.core.report.export import ExportReport
from studio.core.report.export_rows import candidate_rows, latency_rows, verification_rows
from studio.core.report.rows import compare_rows, format_ms, headline, layer_bars, per_layer

PLAN = CompressionPlan.from_dict({"rules": [
    {"layers": "features.0.0", "prune": {"mode": "structured", "amount": 0.5}},
    {"layers": "classifier.1", "lowrank": {"method": "svd", "rank": 16}},
    {"layers": "*", "quantize": {"dtype": "int8", "activations": "dynamic"}},
]})
SIDE = {"params", "nonzero_params", "bytes", "compressed_bytes", "flops"}
COMPRESSION_KEYS = {"model", "source", "input_spec", "recipe", "before", "after", "ratios", "fidelity", "layers",
                    "warnings", "timing", "pattern_skips"}
RUN_KEYS = COMPRESSION_KEYS | {"latency", "history", "data", "settings", "finetune"}
EXPORT_KEYS = {"format", "precision", "int8_mode", "float_layers", "quantized_layers", "calibration", "file",
               "file_bytes", "fp32_file_bytes", "size_vs_fp32", "model", "source", "input_spec", "data", "verification",
               "fp32", "latency", "speedup_vs_fp32", "speedup_vs_pytorch", "slower_than_fp32",
               "slower_than_uncompressed", "candidates", "choice", "float_layers_rule", "warnings"}


def _result(events):
    assert isinstance(events[-1], Finished), events[-1]
    return events[-1].result


@pytest.fixture(scope="module")
def digits():
    loaded = load_model(LoadRequest("sample:digits-cnn"))
    return loaded, open_dataset("digits", loaded)


@pytest.fixture(scope="module")
def compressed(digits):
    return _result(list(compress(digits[0], PLAN)))


@pytest.fixture(scope="module")
def ran(digits):
    return _result(list(run(digits[0], PLAN, digits[1], FinetuneSettings(epochs=1))))


def test_compression_report_round_trips_with_its_keys(compressed):
    report = compressed.report
    assert isinstance(report, CompressionReport)
    plain = json.loads(json.dumps(report.to_dict()))
    assert CompressionReport.from_dict(plain) == report
    assert plain.keys() == COMPRESSION_KEYS
    assert plain["before"].keys() == plain["after"].keys() == SIDE  # no accuracy without data: absent, not null
    assert plain["fidelity"].keys() == {"max_abs", "cosine", "top1_agreement", "samples"}
    measured = {"bytes_before", "bytes_after", "flops_before", "flops_after"}  # where the layer keeps its name
    base = {"name", "technique", "detail", "params_before", "params_after", "skipped"}
    assert all(row.keys() in (base, base | measured) for row in plain["layers"])
    assert any(row.keys() == base | measured for row in plain["layers"])
    assert plain["ratios"]["bytes"] == pytest.approx(plain["after"]["bytes"] / plain["before"]["bytes"])


def test_a_passed_tree_is_not_built_again(digits, compressed, monkeypatch):
    import studio.core.pipelines.compress as pipeline
    from studio.core.model.inspection import inspect_model

    loaded = digits[0]
    tree = inspect_model(loaded.module, loaded.input_spec)
    inspected = []
    monkeypatch.setattr(pipeline, "inspect_model", lambda model, spec: inspected.append(model) or inspect_model(model, spec))
    again = _result(list(compress(loaded, PLAN, tree=tree))).report
    assert loaded.module not in inspected and len(inspected) == 1  # only the compressed model
    assert again.before == compressed.report.before and again.layers == compressed.report.layers


def test_run_report_round_trips_with_its_keys(ran):
    report = ran.report
    assert isinstance(report, RunReport)
    plain = json.loads(json.dumps(report.to_dict()))
    assert RunReport.from_dict(plain) == report
    assert plain.keys() == RUN_KEYS
    assert plain["before"].keys() == plain["after"].keys() == SIDE | {"accuracy", "loss", "latency_ms"}
    assert plain["latency"].keys() == {"before_ms", "after_ms", "speedup", "speedup_low", "speedup_high", "runs",
                                       "same_speed"}
    assert plain["history"][0].keys() == {"step", "name", "value"}
    assert {"resolved", "best_step", "steps", "kept", "improved", "stopped"} <= plain["finetune"].keys()
    assert plain["settings"]["finetune"]["epochs"] == 1 and plain["data"] == "digits"
    # fine-tuning changed the weights: the ratios follow the final model, not the pre-fine-tuning one
    assert plain["ratios"]["compressed_bytes"] == pytest.approx(plain["after"]["compressed_bytes"]
                                                                / plain["before"]["compressed_bytes"])
    assert report.after.latency_ms == report.latency.after_ms and report.before.latency_ms == report.latency.before_ms


def test_compare_rows_and_headline_equal_independent_figures(ran):
    report, plain = ran.report, ran.report.to_dict()
    before, after = plain["before"], plain["after"]
    rows = {row.metric: row for row in compare_rows(report)}
    assert (rows["Params"].original, rows["Params"].compressed) == (format_count(before["params"]),
                                                                    format_count(after["params"]))
    assert rows["Size"].ratio == pytest.approx(after["bytes"] / before["bytes"])
    assert rows["Size"].change == f"−{format_percent(1 - after['bytes'] / before['bytes'])}"
    assert rows["Size"].verdict == 1 and rows["Compressed size (zlib)"].compressed == format_bytes(
        after["compressed_bytes"])
    assert rows["Accuracy"].change.endswith(" pp")
    assert float(rows["Accuracy"].change.replace("−", "-").removesuffix(" pp")) == pytest.approx(
        100 * (after["accuracy"] - before["accuracy"]), abs=0.051)
    assert rows["Latency (ms)"].original == format_ms(before["latency_ms"])
    assert rows["Top-1 agreement"].compressed == format_percent(plain["fidelity"]["top1_agreement"])
    assert headline(report).startswith(f"{before['bytes'] / after['bytes']:.1f}× smaller")
    summary = compression_summary(report)
    assert all(f"{row.metric}" in summary and row.compressed in summary for row in compare_rows(report))


def test_layer_bars_sum_to_the_layers(ran):
    report = ran.report
    key, bars = layer_bars(report)
    assert key == ("bytes" if all(row.bytes_after is not None for row in report.layers) else "params")
    assert [b.name for b in bars] == list(dict.fromkeys(row.name for row in report.layers))
    for bar in bars:
        rows = [row for row in report.layers if row.name == bar.name]
        assert bar.bytes_before == rows[0].bytes_before and bar.bytes_after == rows[-1].bytes_after
        assert bar.params_before == rows[0].params_before and bar.params_after == rows[-1].params_after
    assert len(per_layer(report.layers)) == len(bars)


def test_saved_and_kept_reports_are_the_same_type(ran, tmp_path):
    out = save_compressed(ran, tmp_path / "small")  # a run result saves as is, no re-wrapping
    assert read_report(out / "report.json") == ran.report
    reopened = load_model(LoadRequest(str(out)))
    assert reopened.extras["report"] == ran.report


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_export_report_round_trips_and_rows(digits, tmp_path, precision):
    loaded, data = digits
    request = ExportRequest("onnx", tmp_path / "d.onnx", precision, int8_mode="dynamic", samples=64,
                            calibration_samples=16)
    result = _result(list(export(loaded, request, data)))
    report = result.report
    assert isinstance(report, ExportReport)
    on_disk = json.loads(result.report_path.read_text())
    speed = {"speed_checks"} if precision != "fp32" else set()  # int8: faster/same/slower over repeats
    assert on_disk == report.to_dict() and on_disk.keys() == EXPORT_KEYS | speed
    assert ExportReport.from_dict(on_disk) == report
    assert on_disk["verification"].keys() == {"samples", "max_abs", "cosine", "top1_agreement", "accuracy",
                                              "labeled_samples"}
    rows = dict(verification_rows(report))
    assert rows["Samples"] == format_count(on_disk["verification"]["samples"]) == "64"
    assert rows["File size"] == format_bytes((tmp_path / "d.onnx").stat().st_size)
    assert rows["Accuracy"] == f"{format_percent(on_disk['verification']['accuracy'])} (n=64)"
    latency = dict(latency_rows(report))
    assert latency["ONNX Runtime (this file)"][2] == format_ms(on_disk["latency"]["2_thread"]["runtime"]["median_ms"])
    assert report.speedup_vs_pytorch == pytest.approx(
        on_disk["latency"]["2_thread"]["pytorch"]["median_ms"] / on_disk["latency"]["2_thread"]["runtime"]["median_ms"],
        rel=1e-2)
    if precision == "fp32":
        assert candidate_rows(report) == []  # no int8 candidates
    else:
        (fp32, *_), (chosen, *cells) = candidate_rows(report)
        row = on_disk["candidates"][0]
        assert fp32 == "fp32" and chosen == "✔ dynamic" and row["chosen"] and row["latency"].keys() == {"1_thread",
                                                                                                   "2_thread"}
        assert float(cells[-1].removesuffix("×")) == pytest.approx(row["file_bytes"] / on_disk["fp32"]["file_bytes"],
                                                                   abs=0.0051)
    assert "verified on held-out inputs" in export_summary(report)


def test_speedup_text_follows_the_repeated_timing_verdict():
    """A 1.07x median that repeated timings cannot tell from fp32 reads 'the same speed', never a speed-up."""
    from types import SimpleNamespace

    from studio.core.report.export_rows import speedup_text

    report = SimpleNamespace(precision="int8", runtime="ONNX Runtime", speedup_vs_fp32=1.07, speedup_vs_pytorch=3.0,
                             speed_checks=None)  # the fields speedup_text reads
    replace = lambda r, **kw: SimpleNamespace(**{**vars(r), **kw})  # noqa: E731
    checks = {"2_thread": {"ratio": 1.07, "repeat_ratios": [0.95, 1.07, 1.15], "verdict": "same"}}
    same = replace(report, speed_checks=checks)
    assert speedup_text(same) == ("This file is the same speed as the fp32 ONNX Runtime file within noise (1.07×) "
                                  "and 3.00× faster than PyTorch (2 threads, median).")
    faster = replace(report, speed_checks={"2_thread": dict(checks["2_thread"], verdict="faster")})
    assert "1.07× faster than the fp32 ONNX Runtime file" in speedup_text(faster)
