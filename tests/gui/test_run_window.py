"""Runs from the window: Start → live charts → Finished → compare view; Cancel; close mid-run;
keep and save the result. The original model must come out bit-identical every time."""

from __future__ import annotations

import json

import pytest
import torch
from PySide6.QtWidgets import QMessageBox

from studio.core.plan import CompressionPlan
from studio.core.base.resources import resource
from studio.core.base.units import format_bytes

RECIPE = resource("recipes", "digits-prune-quantize.yaml")


def snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_unchanged(module, before):
    after = module.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[k], before[k]) for k in before)


def prepare(window, epochs, data="digits"):
    window.plan.document.set_plan(CompressionPlan.load(RECIPE))
    panel = window.run.run_panel
    panel.data_combo.setEditText(data)
    panel.epochs.setValue(epochs)
    panel.distill.setChecked(True)
    return panel


def test_start_charts_finish_and_compare(qtbot, digits_window):
    window = digits_window
    original = window.opened.loaded.module
    weights = snapshot(original)
    panel = prepare(window, epochs=1)
    assert window.run.run_action.isEnabled()
    panel.run_button.click()
    assert not panel.run_button.isEnabled() and panel.cancel_button.isEnabled()
    assert window.findChild(type(panel.run_button), "runButton") is panel.run_button
    compare = window.run.compare
    qtbot.waitUntil(lambda: compare.model.rowCount() > 0, timeout=240000)
    qtbot.waitUntil(lambda: panel.run_button.isEnabled(), timeout=10000)

    report = window.run.result.report.to_dict()
    steps, losses = panel.curve_points("train/loss")
    assert len(steps) >= 10 and all(loss > 0 for loss in losses)  # one point per fine-tuning step
    accuracy = panel.curve_points("val/accuracy")[1]
    assert accuracy and accuracy[-1] == pytest.approx(100 * report["after"]["accuracy"], abs=1e-6)
    assert panel.curve_points("size/bytes")[1]
    assert panel.progress.value() == panel.progress.maximum() and "done" in panel.progress.format()
    assert "finished" in panel.log.toPlainText()
    assert compare.keep_button.isEnabled() and compare.headline.text() != "No compressed model yet"
    assert report["after"]["params"] < report["before"]["params"]
    assert window.run.docks[1].isVisible()
    assert_unchanged(original, weights)


def test_cancel_mid_run_keeps_original(qtbot, digits_window):
    window = digits_window
    original = window.opened.loaded.module
    weights = snapshot(original)
    panel = prepare(window, epochs=50)
    panel.run_button.click()
    qtbot.waitUntil(lambda: len(panel.curve_points("train/loss")[0]) >= 3, timeout=240000)
    panel.cancel_button.click()
    assert panel.cancel_button.text() == "Cancelling…"
    qtbot.waitUntil(lambda: panel.run_button.isEnabled(), timeout=10000)
    # the panel re-enables on the pipeline's RunCancelled; the runner ends when the job's worker has stopped
    qtbot.waitUntil(lambda: not window.run.runner.busy, timeout=10000)
    # the pipeline's own RunCancelled reaches the panel: it says how far fine-tuning got
    log = panel.log.toPlainText()
    assert "cancelled during finetune after " in log and "fine-tuning steps; the original model is unchanged" in log
    assert panel.stage_label.text().startswith("Cancelled during finetune after ")
    assert window.run.result is None and window.run.compare.model.rowCount() == 0
    assert_unchanged(original, weights)
    assert window.opened.loaded.module is original


def test_opening_during_a_run_asks_then_cancels_it_first(qtbot, digits_window, monkeypatch):
    """One job at a time: Reload during a run asks; No keeps the run, Yes cancels it (the panel
    shows the core's message) and only then loads the model again."""
    window = digits_window
    original = window.opened
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked: list[str] = []

    def question(parent, title, text, *args):
        asked.append(text)
        return answers.pop(0)

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    panel = prepare(window, epochs=50)
    panel.run_button.click()
    qtbot.waitUntil(lambda: len(panel.curve_points("train/loss")[0]) >= 2, timeout=240000)
    run = window.runner.current
    window.reload()
    assert asked == ["The run is still running.\n\nCancel it to open sample:digits-cnn?"]
    assert window.runner.current is run and not run.outcome and panel.cancel_button.isEnabled()
    order: list[str] = []
    run.ended.connect(lambda outcome: order.append(f"run {outcome}"))
    window.modelShown.connect(lambda: order.append("model shown"))
    with qtbot.waitSignal(window.modelShown, timeout=60000):
        window.reload()
    assert order == ["run cancelled", "model shown"]
    assert "cancelled during finetune after " in panel.log.toPlainText()
    assert window.opened is not original and window.opened.loaded.module is not original.loaded.module
    assert panel.run_button.isEnabled() and window.run.result is None


def test_close_during_run_cancels_and_joins(qtbot, digits_window):
    window = digits_window
    panel = prepare(window, epochs=50)
    panel.run_button.click()
    qtbot.waitUntil(lambda: len(panel.curve_points("train/loss")[0]) >= 1, timeout=240000)
    runner = window.run.runner
    assert runner.busy
    window.close()
    assert not runner.busy


def test_keep_and_save_the_result(qtbot, digits_window, tmp_path):
    window = digits_window
    panel = prepare(window, epochs=0)
    panel.run_button.click()
    qtbot.waitUntil(lambda: window.run.result is not None, timeout=240000)
    qtbot.waitUntil(lambda: not window.run.runner.busy, timeout=10000)
    params_after = window.run.result.report.to_dict()["after"]["params"]
    bytes_after = window.run.result.report.to_dict()["after"]["bytes"]

    window.run.save_result(str(tmp_path / "small"))
    qtbot.waitUntil(lambda: (tmp_path / "small" / "report.json").exists(), timeout=60000)
    qtbot.waitUntil(lambda: not window.run.runner.busy, timeout=10000)
    assert json.loads((tmp_path / "small" / "report.json").read_text())["after"]["params"] == params_after

    with qtbot.waitSignal(window.modelShown, timeout=60000):
        window.run.compare.keep_button.click()
    assert window.opened.tree.total_params == params_after
    # int8 layers are float tensors in memory; the summary shows the size at the real bit widths
    assert window.summary.value("Size") == format_bytes(bytes_after)
    assert "(compressed)" in window.windowTitle()
    assert window.plan.document.plan == CompressionPlan()  # the kept model starts a fresh plan
    assert window.run.compare.model.rowCount() == 0


def test_bad_data_gets_a_dialog_and_the_panel_recovers(qtbot, digits_window, tmp_path):
    window = digits_window
    panel = prepare(window, epochs=1, data=f"imagefolder:{tmp_path / 'missing'}")
    panel.run_button.click()
    qtbot.waitUntil(lambda: window.last_error_dialog is not None and window.last_error_dialog.isVisible(),
                    timeout=60000)
    dialog = window.last_error_dialog
    assert dialog.windowTitle() == "Run failed" and "missing" in dialog.text()
    qtbot.waitUntil(lambda: panel.run_button.isEnabled(), timeout=10000)
    assert window.run.result is None and window.isVisible()
    # the failure stays in view after the dialog: the log, the stage line and the status bar say it
    assert "Failed:" in panel.stage_label.text() and "missing" in panel.stage_label.toolTip()
    assert "Starting" not in panel.stage_label.text() and panel.progress.format().startswith("failed")
    assert any("failed:" in line and "missing" in line for line, _ in panel._log_lines) or \
        "failed:" in panel.log.toPlainText()
    assert window.statusBar().currentMessage() == "Run failed"


def test_start_has_a_shortcut(digits_window):
    button = digits_window.run.run_panel.run_button
    assert button.shortcut().toString() == "Ctrl+Return" and "Ctrl+Return" in button.toolTip()
