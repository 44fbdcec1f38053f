"""CompareView with the report of a real digits run; the row builders as plain data."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from studio.core.base.units import format_bytes, format_count, format_flops, format_percent  # noqa: E402


@pytest.fixture(scope="module")
def report(digits_run_events) -> dict:
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
    before, after = report["before"], report["after"]
    assert rows["Params"][:2] == [format_count(before["params"]), format_count(after["params"])]
    assert rows["Non-zero params"][1] == format_count(after["nonzero_params"])
    assert rows["Size"][0] == format_bytes(before["bytes"])
    assert rows["Compressed size (zlib)"][1] == format_bytes(after["compressed_bytes"])
    assert rows["FLOPs"][0] == format_flops(before["flops"])
    assert rows["Accuracy"][:2] == [format_percent(before["accuracy"]), format_percent(after["accuracy"])]
    assert {"Loss", "Latency (ms)", "Top-1 agreement", "Cosine", "Max |diff|", "KL"} <= set(rows)
    assert rows["Top-1 agreement"][1] == format_percent(report["fidelity"]["top1_agreement"])
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
    layers = report["layers"]
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
    report = list(compress(loaded, plan))[-1].result.report
    row = next(r for r in report["layers"] if r["name"] == "classifier.1")
    linear = loaded.module.get_submodule("classifier.1")
    out_features, in_features = linear.weight.shape
    assert row["bytes_before"] == 4 * (out_features * in_features + out_features)
    assert out_features * in_features < row["bytes_after"] < row["bytes_before"] / 2
    assert report["after"]["bytes"] - report["before"]["bytes"] == row["bytes_after"] - row["bytes_before"]


def test_many_layers_become_top_bars_and_one_sum(qtbot):
    from studio.gui.qt_layer_bars import MAX_BARS, LayerBars

    changes = [{"name": f"l{i}", "technique": "quantize", "detail": "int8", "params_before": 10, "params_after": 10,
                "bytes_before": 1000 + i, "bytes_after": 250} for i in range(100)]
    bars = LayerBars()
    qtbot.addWidget(bars)
    bars.set_layers(changes)
    assert len(bars.layers) == MAX_BARS and bars.layers[-1]["name"] == f"{100 - MAX_BARS + 1} other layers"
    assert sum(bars.bars_before.opts["width"]) == sum(c["bytes_before"] for c in changes)
    assert [layer["name"] for layer in bars.layers[:-1]] == [f"l{i}" for i in range(100 - MAX_BARS + 1, 100)]
    bars.set_layers([])
    assert not bars.getPlotItem().getAxis("bottom").style["showValues"]


def test_a_layer_changed_twice_is_one_bar():
    from studio.gui.qt_layer_bars import per_layer

    changes = [{"name": "fc", "technique": "prune", "detail": "structured 50%", "params_before": 100, "params_after": 50},
               {"name": "conv", "technique": "quantize", "detail": "int8", "params_before": 30, "params_after": 30},
               {"name": "fc", "technique": "quantize", "detail": "int8", "params_before": 50, "params_after": 50},
               {"name": "head", "technique": "lowrank", "detail": "no saving", "params_before": 9, "params_after": 9,
                "skipped": True}]
    merged = per_layer(changes)
    assert [m["name"] for m in merged] == ["fc", "conv", "head"]
    assert (merged[0]["params_before"], merged[0]["params_after"]) == (100, 50)
    assert merged[0]["techniques"] == ["prune", "quantize"] and len(merged[0]["details"]) == 2
    assert merged[2]["skipped"] and merged[2]["techniques"] == []


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
    view.set_report({**report, "warnings": ["classifier.4: too small to factorize"]})
    assert view.warnings.count() == 1 and not view.warnings.isHidden()
    view.set_report(report)
    assert view.warnings.isHidden()


def test_change_text_and_headline():
    from studio.gui.qt_compare_view import abbreviate, change_text, compare_rows, headline

    assert change_text(100, 38) == "−62.0%"
    assert change_text(100, 100) == "±0%"
    assert change_text(1, 3) == "3.0×"
    assert change_text(0.991, 0.987, "pp") == "−0.4 pp"
    report = {"before": {"bytes": 3.8e6, "flops": 1.9e9, "accuracy": 0.991},
              "after": {"bytes": 1e6, "flops": 1e9, "accuracy": 0.987}}
    assert headline(report) == "3.8× smaller · accuracy 99.1% → 98.7% · 1.9× fewer FLOPs"
    noisy = {**report, "latency": {"same_speed": True, "speedup": 1.4}}  # an interval that contains 1
    assert headline(noisy).endswith("· same speed")
    faster = {**report, "latency": {"same_speed": False, "speedup": 2.04}}
    assert headline(faster).endswith("· 2.0× faster")
    verdicts = {row.metric: row.verdict for row in compare_rows(report)}
    assert verdicts == {"Size": 1, "FLOPs": 1, "Accuracy": -1}
    assert abbreviate("encoder.layer.11.attention.self.query") == "e.l.11.attention.self.query"
    assert len(abbreviate("x" * 80)) <= 28
