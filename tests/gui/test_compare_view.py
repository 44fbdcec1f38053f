"""CompareView with the report of a real digits run; the row builders as plain data."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from dataclasses import replace  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from studio.core.base.units import format_bytes, format_count, format_flops, format_percent  # noqa: E402


@pytest.fixture(scope="module")
def report(digits_run_events):
    return digits_run_events[-1].result.report


@pytest.fixture
def view(show):
    from studio.gui.qt_compare_view import CompareView

    return show(CompareView())


def _table(view) -> dict[str, list[str]]:
    model = view.table.model()
    return {model.index(r, 0).data(): [model.index(r, c).data() for c in range(1, 4)]
            for r in range(model.rowCount())}


def test_table_shows_formatted_figures(view, report, qtmodeltester):
    view.set_report(report)
    qtmodeltester.check(view.model)
    assert view.table.objectName() == "compareTable"
    rows = _table(view)
    before, after = report.to_dict()["before"], report.to_dict()["after"]
    assert rows["Params"][:2] == [format_count(before["params"]), format_count(after["params"])]
    assert rows["Non-zero params"][1] == format_count(after["nonzero_params"])
    assert rows["Size"][0] == format_bytes(before["bytes"])
    assert rows["Compressed size (zlib)"][1] == format_bytes(after["compressed_bytes"])
    assert rows["FLOPs"][0] == format_flops(before["flops"])
    assert rows["Accuracy"][:2] == [format_percent(before["accuracy"]), format_percent(after["accuracy"])]
    assert {"Loss", "Latency (ms)", "Top-1 agreement", "Cosine", "Max |diff|", "KL"} <= set(rows)
    assert rows["Top-1 agreement"][1] == format_percent(report.fidelity.top1_agreement)
    # 90% pruning: fewer non-zero params (green, negative), lower accuracy (red, negative)
    assert rows["Non-zero params"][2].startswith("−") and rows["Accuracy"][2].startswith("−")
    model = view.table.model()
    colours = {model.index(r, 0).data(): model.index(r, 3).data(Qt.ItemDataRole.ForegroundRole).name()
               for r in range(model.rowCount())}
    assert colours["Non-zero params"] == "#188038" and colours["Accuracy"] == "#c5221f"
    assert view.headline.text()
    view.grab().save("/tmp/compare_view.png")


def test_bars_one_per_layer_per_series(view, report):
    view.set_report(report)
    layers = report.to_dict()["layers"]
    assert view.bars.objectName() == "layerBars"
    assert view.bars.key == "bytes"  # real bit widths, so quantization shows
    for bars, key in ((view.bars_before, "bytes_before"), (view.bars_after, "bytes_after")):
        assert len(bars.opts["y"]) == len(layers)
        assert list(bars.opts["width"]) == [layer[key] for layer in layers]
    axis = view.bars.getPlotItem().getAxis("left")
    assert axis.names == [layer["name"] for layer in layers]


def test_quantized_layer_shows_its_real_bytes(digits_tree):
    """int8 weights: a quarter of the float bytes plus per-channel scales, as the report's totals."""
    from studio.core.pipelines.compress import compress
    from studio.core.pipelines.opening import LoadRequest, load_model
    from studio.core.plan import CompressionPlan

    loaded = load_model(LoadRequest("sample:digits-cnn"))
    plan = CompressionPlan.from_dict({"rules": [{"layers": "classifier.1", "quantize": {"dtype": "int8"}}]})
    report = list(compress(loaded, plan))[-1].result.report.to_dict()
    row = next(r for r in report["layers"] if r["name"] == "classifier.1")
    linear = loaded.module.get_submodule("classifier.1")
    out_features, in_features = linear.weight.shape
    assert row["bytes_before"] == 4 * (out_features * in_features + out_features)
    assert out_features * in_features < row["bytes_after"] < row["bytes_before"] / 2
    assert report["after"]["bytes"] - report["before"]["bytes"] == row["bytes_after"] - row["bytes_before"]


def test_many_layers_become_top_bars_and_one_sum(qtbot):
    from studio.core.report.compression import LayerRow
    from studio.core.report.rows import MAX_BARS, per_layer, top_layers
    from studio.gui.qt_layer_bars import LayerBars

    changes = [LayerRow(f"l{i}", "quantize", "int8", 10, 10, bytes_before=1000 + i, bytes_after=250) for i in range(100)]
    bars = LayerBars()
    qtbot.addWidget(bars)
    bars.set_bars("bytes", top_layers(per_layer(changes), "bytes"))
    assert len(bars.layers) == MAX_BARS and bars.layers[-1].name == f"{100 - MAX_BARS + 1} other layers"
    assert sum(bars.bars_before.opts["width"]) == sum(c.bytes_before for c in changes)
    assert sum(bars.bars_after.opts["width"]) == 250 * len(changes)
    assert [layer.name for layer in bars.layers[:-1]] == [f"l{i}" for i in range(100 - MAX_BARS + 1, 100)]
    bars.set_bars("params", [])
    assert not bars.getPlotItem().getAxis("bottom").style["showValues"]


def test_a_layer_changed_twice_is_one_bar():
    from studio.core.report.compression import LayerRow
    from studio.core.report.rows import per_layer

    changes = [LayerRow("fc", "prune", "structured 50%", 100, 50), LayerRow("conv", "quantize", "int8", 30, 30),
               LayerRow("fc", "quantize", "int8", 50, 50), LayerRow("head", "lowrank", "no saving", 9, 9, skipped=True)]
    merged = per_layer(changes)
    assert [m.name for m in merged] == ["fc", "conv", "head"]
    assert (merged[0].params_before, merged[0].params_after) == (100, 50)
    assert merged[0].techniques == ("prune", "quantize") and len(merged[0].details) == 2
    assert merged[2].skipped and merged[2].techniques == ()


def test_buttons_emit_and_none_disables(qtbot, view, report):
    view.set_report(report)
    for name, signal in (("keepButton", view.keepRequested), ("saveButton", view.saveRequested),
                         ("discardButton", view.discardRequested)):
        from PySide6.QtWidgets import QPushButton

        button = view.findChild(QPushButton, name)
        assert button.isEnabled()
        with qtbot.waitSignal(signal, timeout=1000):
            qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    view.set_report(None)
    assert not any(b.isEnabled() for b in (view.keep_button, view.save_button, view.discard_button))
    assert view.model.rowCount() == 0 and len(view.bars_before.opts["y"]) == 0


def test_warnings_listed(view, report):
    view.set_report(replace(report, warnings=("classifier.4: too small to factorize",)))
    assert view.warnings.count() == 1 and not view.warnings.isHidden()
    view.set_report(report)
    assert view.warnings.isHidden()


def test_change_text_and_headline():
    from studio.core.report.compression import CompressionReport, RunReport
    from studio.core.report.rows import change_text, compare_rows, headline
    from studio.gui.qt_layer_bars import abbreviate

    assert change_text(100, 38) == "−62.0%"
    assert change_text(100, 100) == "±0%"
    assert change_text(1, 3) == "3.0×"
    assert change_text(0.991, 0.987, "pp") == "−0.4 pp"
    side = {"params": 10, "nonzero_params": 10, "compressed_bytes": 5}
    plain = {"model": "m", "source": "m", "input_spec": "1x4 float32", "recipe": {}, "ratios": {},
             "fidelity": {"max_abs": 0.1, "cosine": 0.99, "top1_agreement": None, "samples": 0},
             "before": {**side, "bytes": 3.8e6, "flops": 1.9e9, "accuracy": 0.991},
             "after": {**side, "bytes": 1e6, "flops": 1e9, "accuracy": 0.987}}
    report = CompressionReport.from_dict(plain)
    assert headline(report) == "3.8× smaller · accuracy 99.1% → 98.7% · 1.9× fewer FLOPs"
    timing = {"before_ms": 1.0, "after_ms": 1.0, "speedup_low": 0.5, "speedup_high": 3.0, "runs": 21}
    noisy = RunReport.from_dict({**plain, "latency": {**timing, "same_speed": True, "speedup": 1.4}})  # interval holds 1
    assert headline(noisy).endswith("· same speed")
    faster = RunReport.from_dict({**plain, "latency": {**timing, "same_speed": False, "speedup": 2.04}})
    assert headline(faster).endswith("· 2.0× faster")
    verdicts = {row.metric: row.verdict for row in compare_rows(report) if row.verdict}
    assert verdicts == {"Size": 1, "FLOPs": 1, "Accuracy": -1}
    assert abbreviate("encoder.layer.11.attention.self.query") == "e.l.11.attention.self.query"
    assert len(abbreviate("x" * 80)) <= 28
