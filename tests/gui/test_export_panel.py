"""Export panel: the request it builds, overwrite confirmation, and real export events."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from studio.core.base.events import Finished, StageStarted, Warning  # noqa: E402
from studio.core.pipelines.export import ExportRequest, ExportResult  # noqa: E402
from studio.core.base.units import format_bytes  # noqa: E402
from studio.core.report.rows import format_ms  # noqa: E402
from studio.gui.qt_export_panel import ExportPanel  # noqa: E402


@pytest.fixture
def panel(show):
    return show(ExportPanel(), 900, 600)


@pytest.fixture(scope="module")
def digits_events(tmp_path_factory):
    """One real ONNX export of the digits sample, shared by the tests that read its events."""
    from studio.core.pipelines.export import export
    from studio.core.pipelines.opening import LoadRequest, load_model

    loaded = load_model(LoadRequest("sample:digits-cnn"))
    out = tmp_path_factory.mktemp("export") / "d.onnx"
    return list(export(loaded, ExportRequest("onnx", out), None))


def _cells(table):
    return [table.item(r, c).text() for r in range(table.rowCount()) for c in range(table.columnCount())]


def test_button_emits_request(qtbot, panel, tmp_path):
    assert panel.objectName() == "exportPanel"
    panel.set_format("tflite")
    panel.set_precision("int8")
    panel.int8_combo.setCurrentIndex(panel.int8_combo.findData("static"))
    panel.path_edit.setText(str(tmp_path / "m.tflite"))
    panel.data_edit.setText("digits")
    with qtbot.waitSignal(panel.exportRequested) as signal:
        qtbot.mouseClick(panel.export_button, Qt.MouseButton.LeftButton)
    assert signal.args == [ExportRequest("tflite", tmp_path / "m.tflite", "int8", force=False, int8_mode="static")]
    panel.calibration_combo.setCurrentIndex(panel.calibration_combo.findData("entropy"))
    panel.keep_float_edit.setText("stem, head.* ")
    assert panel.request().calibration == "entropy" and panel.request().keep_float == ("stem", "head.*")
    assert panel.data_spec() == "digits"
    assert panel.sensitivity_edit.isEnabled() and panel.request().sensitivity is None
    panel.sensitivity_edit.setText(str(tmp_path / "sweep.json"))
    assert panel.request().sensitivity == tmp_path / "sweep.json"  # auto's float layers from that sweep


def test_int8_mode_only_for_int8(panel):
    assert not panel.int8_combo.isEnabled() and not panel.calibration_combo.isEnabled()
    assert not panel.sensitivity_edit.isEnabled() and not panel.sensitivity_button.isEnabled()
    panel.set_precision("int8")
    assert panel.int8_combo.isEnabled() and panel.calibration_combo.isEnabled() and panel.sensitivity_edit.isEnabled()


def test_suffix_follows_format(panel, tmp_path):
    panel.set_output(tmp_path / "model.pt")
    assert panel.path_edit.text() == str(tmp_path / "model.onnx")
    panel.set_format("tflite")
    assert panel.path_edit.text() == str(tmp_path / "model.tflite")


def test_browse_forces_suffix(panel, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda *args, **kwargs: (str(tmp_path / "picked"), "")))
    panel.browse_button.click()
    assert panel.path_edit.text() == str(tmp_path / "picked.onnx")


@pytest.mark.parametrize("text, message", [("", "Choose the file"), ("/tmp/x.tflite", "should end in .onnx")])
def test_invalid_path_is_reported(qtbot, panel, text, message):
    panel.path_edit.setText(text)
    with qtbot.assertNotEmitted(panel.exportRequested):
        panel.export_button.click()
    assert panel.error_label.isVisible() and message in panel.error_label.text()


def test_existing_file_asks_before_replacing(qtbot, panel, tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    panel.path_edit.setText(str(target))
    with qtbot.assertNotEmitted(panel.exportRequested):
        panel.export_button.click()
    box = panel.findChild(QMessageBox, "overwriteDialog")
    assert box is not None
    qtbot.waitUntil(box.isVisible)
    with qtbot.waitSignal(panel.exportRequested) as signal:
        qtbot.mouseClick(box.button(QMessageBox.StandardButton.Yes), Qt.MouseButton.LeftButton)
    assert signal.args[0] == ExportRequest("onnx", target, force=True)


def test_cancel_replacing_emits_nothing(qtbot, panel, tmp_path):
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    panel.path_edit.setText(str(target))
    panel.export_button.click()
    box = panel.findChild(QMessageBox, "overwriteDialog")
    qtbot.waitUntil(box.isVisible)
    with qtbot.assertNotEmitted(panel.exportRequested):
        box.button(QMessageBox.StandardButton.Cancel).click()


def test_real_export_events_fill_tables(qtbot, panel, digits_events, monkeypatch):
    panel.set_busy(True)
    assert not panel.export_button.isEnabled() and panel.progress.isVisible()
    assert any(isinstance(e, StageStarted) for e in digits_events)
    for event in digits_events:
        panel.handle_event(event)
        if isinstance(event, StageStarted):
            assert event.name.capitalize() in panel.stage_label.text()
    panel.set_busy(False)
    report = digits_events[-1].result.report.to_dict()
    results = _cells(panel.results_table)
    assert format_bytes(report["file_bytes"]) in results
    assert str(report["verification"]["samples"]) in results
    latency = _cells(panel.latency_table)
    assert format_ms(report['latency']['1_thread']['runtime']['median_ms']) in latency
    assert "—" not in latency
    assert panel.latency_table.verticalHeaderItem(0).text() == "ONNX Runtime (this file)"
    assert panel.latency_table.verticalHeaderItem(1).text() == "ONNX Runtime fp32 file"
    assert not panel.candidates_box.isVisible()  # fp32: no int8 candidates
    assert panel.reveal_button.isEnabled()
    assert panel.banner.isVisible() == report["slower_than_uncompressed"]

    opened = []
    monkeypatch.setattr("studio.gui.qt_export_panel.QDesktopServices.openUrl", lambda url: opened.append(url))
    qtbot.mouseClick(panel.reveal_button, Qt.MouseButton.LeftButton)
    assert [Path(u.toLocalFile()) for u in opened] == [Path(report["file"]).parent]


def test_slower_than_uncompressed_shows_banner(panel, digits_events):
    finished = digits_events[-1]
    report = replace(finished.result.report, slower_than_uncompressed=True)
    panel.handle_event(Finished(ExportResult(finished.result.path, finished.result.report_path, report)))
    assert panel.banner.isVisible()
    assert "Slower than the uncompressed" in panel.banner.text()
    panel.set_busy(True)
    assert not panel.banner.isVisible() and not panel.reveal_button.isEnabled()
    assert set(_cells(panel.results_table)) == {"—"}


def test_warning_event_and_error(panel):
    panel.handle_event(Warning("No ONNX node matched"))
    assert panel.banner.isVisible() and "No ONNX node matched" in panel.banner.text()
    panel.show_error("Cannot export: boom")
    assert panel.error_label.isVisible() and panel.error_label.text() == "Cannot export: boom"


def test_int8_candidates_table_and_slower_than_fp32_banner(panel, digits_events):
    """The table shows the rows core computes (fp32 + every candidate, the winner marked), and
    an int8 file slower than the fp32 file of the same runtime is a prominent warning."""
    from studio.core.report.export import ExportReport
    from studio.core.report.export_rows import candidate_rows

    finished = digits_events[-1]
    report = finished.result.report.to_dict()
    fp32 = dict(report["fp32"], latency_ms=1.0, accuracy=0.99)
    rows = [dict(fp32, label="static", mode="static", latency_ms=1.6, speed_vs_fp32=0.625, size_vs_fp32=0.3,
                 within_budget=True, chosen=True),
            dict(fp32, label="dynamic", mode="dynamic", latency_ms=3.2, speed_vs_fp32=0.31, size_vs_fp32=0.28,
                 within_budget=True, accuracy=0.9)]
    latency = report["latency"]["2_thread"]
    latency["runtime"]["median_ms"], latency["runtime_fp32"]["median_ms"] = 1.6, 1.0
    report.update(precision="int8", int8_mode="static", fp32=fp32, candidates=rows, slower_than_fp32=True,
                  speedup_vs_fp32=0.625, choice="static: the fastest of 2 candidate(s) within the budget",
                  float_layers_rule="the most fragile layers measured in ONNX Runtime: conv1 (−40% of the error)",
                  speed_checks={"1_thread": {"ratio": 1.0, "repeat_ratios": [0.9, 1.0, 1.1], "verdict": "same"},
                                "2_thread": {"ratio": 0.625, "repeat_ratios": [0.6, 0.625, 0.7],
                                             "verdict": "slower"}})
    typed = ExportReport.from_dict(report)
    panel.handle_event(Finished(ExportResult(finished.result.path, finished.result.report_path, typed)))
    assert panel.candidates_box.isVisible()
    expected = candidate_rows(typed)
    assert len(expected) == 3 and expected[1][0] == "✔ static"
    assert _cells(panel.candidates_table) == [c for row in expected for c in row]
    assert f"(n={report['fp32']['samples']})" in expected[0][1]
    assert "fastest of 2" in panel.choice_label.text()
    assert "Float layers tried: the most fragile layers measured in ONNX Runtime" in panel.choice_label.text()
    assert ("1 thread the same within noise (0.90–1.10×), 2 threads SLOWER (0.60–0.70×)"
            in panel.speedup_label.text())
    assert panel.banner.isVisible() and "SLOWER THAN FP32 IN ONNX RUNTIME" in panel.banner.text()
    assert "1.600 ms vs 1.000 ms" in panel.banner.text()


def test_auto_pick_no_faster_than_fp32_is_a_banner_and_the_cli_first_line(panel, digits_events):
    """Every candidate within the budget as slow as fp32 (repeats within noise, so not 'slower'):
    the window's banner and the CLI's first line still say it plainly."""
    from studio.cli.tables import export_summary
    from studio.core.report.export import ExportReport

    finished = digits_events[-1]
    report = finished.result.report.to_dict()
    fp32 = dict(report["fp32"], latency_ms=1.0, accuracy=0.99)
    rows = [dict(fp32, label="dynamic", mode="dynamic", latency_ms=1.1, speed_vs_fp32=0.92, size_vs_fp32=0.3,
                 within_budget=True, chosen=True),
            dict(fp32, label="static", mode="static", latency_ms=0.7, speed_vs_fp32=1.4, size_vs_fp32=0.28,
                 within_budget=False, accuracy=0.9)]
    report.update(precision="int8", int8_mode="dynamic", fp32=fp32, candidates=rows, slower_than_fp32=False,
                  choice="NO CANDIDATE WITHIN THE BUDGET IS FASTER THAN THE FP32 FILE (…)",
                  speed_checks={"1_thread": {"ratio": 0.95, "repeat_ratios": [0.9, 0.95, 1.1], "verdict": "same"},
                                "2_thread": {"ratio": 0.92, "repeat_ratios": [0.8, 0.92, 1.2], "verdict": "same"}})
    typed = ExportReport.from_dict(report)
    panel.handle_event(Finished(ExportResult(finished.result.path, finished.result.report_path, typed)))
    assert panel.banner.isVisible() and "NOT FASTER THAN FP32 IN ONNX RUNTIME" in panel.banner.text()
    assert "0.92× its speed" in panel.banner.text()
    assert "NO CANDIDATE WITHIN THE BUDGET IS FASTER" in panel.choice_label.text()
    first = export_summary(typed).splitlines()[0]
    assert first.startswith("⚠ NOT FASTER THAN FP32 IN ONNX RUNTIME")


def test_result_scrolls_into_view_in_a_short_dock(qtbot, show, digits_events):
    """At 1366×768 the export dock is shorter than its form: a finished export scrolls the
    verification box into view instead of leaving it below the fold."""
    from PySide6.QtWidgets import QScrollArea

    panel = ExportPanel()
    area = QScrollArea()
    area.setWidget(panel)
    area.setWidgetResizable(True)
    show(area, 900, 260)
    bar = area.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == 0
    top = panel.results_box.mapTo(panel, panel.results_box.rect().topLeft()).y()
    assert top > area.viewport().height()  # below the fold before the result
    panel.handle_event(digits_events[-1])
    qtbot.waitUntil(lambda: bar.value() > 0)
    shown = panel.results_box.mapTo(area.viewport(), panel.results_box.rect().topLeft()).y()
    assert 0 <= shown < area.viewport().height()
