"""The Sensitivity dock in the window, on a real sweep of the digits sample: the heatmap fills
in from the core's events, the tree's column shows the drops, a click on a cell is an
undoable plan edit, fit to target marks a plan, cancel stops, and one job runs at a time."""

from __future__ import annotations

import json

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from studio.core.plan.resolve import resolve
from studio.core.techniques.pruning import PruneConfig
from studio.gui.qt_layer_tree_model import COL_PLAN, COL_SENSITIVITY
from studio.gui.qt_sensitivity_model import format_drop

SETTINGS = "prune: 50% 90%; quantize: int8"


def start(qtbot, window, tmp_path, settings=SETTINGS, samples=200, techniques=("prune", "quantize")):
    controller = window.sensitivity
    controller.cache_dir = tmp_path / "cache"
    panel = controller.panel
    window.sensitivity.action.trigger()
    assert controller.dock.isVisible()
    for key, check in panel.technique_checks.items():
        check.setChecked(key in techniques)
    panel.settings_edit.setText(settings)
    panel.data_combo.setEditText("digits")
    panel.samples.setValue(samples)
    assert panel.start_button.isEnabled()
    panel.start_button.click()
    assert not panel.start_button.isEnabled() and panel.cancel_button.isEnabled()
    return controller, panel


def tree_index(window, layer, column):
    model = window.layers.model
    return model.index_of(window.opened.tree[layer], column)


def test_sweep_fills_heatmap_click_undo_and_fit(qtbot, digits_window, tmp_path):
    window = digits_window
    original = {k: v.clone() for k, v in window.opened.loaded.module.state_dict().items()}
    controller, panel = start(qtbot, window, tmp_path)
    seen: list[int] = []  # cells in the table at each (throttled) repaint
    controller.model.cellsChanged.connect(lambda: seen.append(controller.model.done))
    assert window.runner.current.job.kind == "sweep"  # one job at a time: another start would ask first
    qtbot.waitUntil(lambda: controller.result is not None, timeout=300000)
    qtbot.waitUntil(lambda: panel.start_button.isEnabled(), timeout=10000)
    assert window.run.run_panel.run_button.isEnabled() and window.run.export_panel.export_button.isEnabled()
    assert window.spec_action.isEnabled() and not window.runner.busy

    result, model = controller.result, controller.model
    assert [s.label for s in result.settings] == ["prune 50%", "prune 90%", "int8"]
    assert len(result.layers) >= 4 and model.rowCount() == len(result.layers)
    for cell in result.cells:  # the heatmap shows the core's table, cell by cell
        row, column = result.layers.index(cell.layer), [s.label for s in result.settings].index(cell.setting)
        assert model.index(row, column).data() == (format_drop(cell.drop, result.metric) if cell.ok else "n/a")
    assert panel.progress.format() == "done"
    total = len(result.cells) + len(result.inverse)
    assert any(0 < done < total for done in seen)  # it filled in live, before the sweep finished
    heavy = max(result.layers, key=lambda name: result.cell(name, "prune 90%").drop)
    assert result.cell(heavy, "prune 90%").drop > result.cell(heavy, "prune 50%").drop - 0.01

    # the tree's Sensitivity column: drop at the reference setting, per swept layer
    assert not window.layers.view.isColumnHidden(COL_SENSITIVITY)
    for layer in result.layers:
        text = tree_index(window, layer, COL_SENSITIVITY).data()
        reference = result.cell(layer, controller.reference)
        assert text.startswith(format_drop(reference.drop, result.metric, True) if reference.ok else "n/a")

    # a click on a cell plans that layer at that setting; undo reverts it
    heatmap = panel.heatmap
    index = heatmap.index_of(heavy, "prune 90%")
    heatmap.view.scrollTo(index)
    qtbot.mouseClick(heatmap.view.viewport(), Qt.MouseButton.LeftButton, pos=heatmap.view.visualRect(index).center())
    module = window.opened.loaded.module
    assigned = resolve(window.plan.document.plan, module)
    assert assigned["prune"][heavy] == PruneConfig(mode="unstructured", amount=0.9)
    assert heatmap.chosen == {heavy: {"prune 90%"}}
    assert "plan" in tree_index(window, heavy, COL_SENSITIVITY).data()
    assert tree_index(window, heavy, COL_PLAN).data()  # marked in the plan column too
    window.plan.undo_action.trigger()
    assert not window.plan.document.plan.rules and heatmap.chosen == {}

    # fit to a size target: one undoable edit, the plan marked in the tree with its predicted drop
    size = window.opened.tree.total_bytes
    panel.target_kind.setCurrentIndex(0)
    panel.target_value.setText(f"{size * 0.6 / 1000:.1f}kB")
    stack = window.plan.document.undo_stack
    steps = stack.index()
    panel.fit_button.click()
    qtbot.waitUntil(lambda: controller.fitted is not None, timeout=60000)
    fitted = controller.fitted
    assert fitted.met and fitted.predicted_bytes <= size * 0.6
    assert "predicted drop" in panel.fit_result.text()
    chosen = dict(fitted.choices)
    assert chosen and stack.index() == steps + 1 and stack.undoText() == "Fit plan to target"
    for layer, label in chosen.items():
        assert label in heatmap.chosen[layer]
        assert tree_index(window, layer, COL_PLAN).data()
        assert "plan" in tree_index(window, layer, COL_SENSITIVITY).data()
    assert controller.prediction is not None
    assert controller.prediction.drop == pytest.approx(sum(result.cell(l, s).drop for l, s in chosen.items()))

    # run the fitted plan: the compare view shows the prediction next to the measurement
    window.run.run_panel.data_combo.setEditText("digits")
    window.run.run_panel.epochs.setValue(0)
    window.run.run_panel.run_button.click()
    compare = window.run.compare
    qtbot.waitUntil(lambda: compare.model.rowCount() > 0 and not window.run.runner.busy, timeout=300000)
    report = window.run.result.report.to_dict()
    measured = 100 * (report["before"]["accuracy"] - report["after"]["accuracy"])
    text = compare.prediction.text()
    assert compare.prediction.isVisible() and f"measured <b>{measured:.1f} pp</b>" in text
    assert f"predicted {100 * controller.prediction.drop:.1f} pp" in text
    assert panel.start_button.isEnabled()
    window.plan.undo_action.trigger()
    assert not window.plan.document.plan.rules

    # the table saves as the CLI writes it and opens again; another model's table is refused
    path = tmp_path / "sens.json"
    controller.save_result(str(path))
    controller.open_result(str(path))
    assert controller.result == result and model.rowCount() == len(result.layers)
    panel.reference_combo.textActivated.emit("int8")  # the tree column follows the chosen setting
    assert controller.reference == "int8"
    layer = result.layers[0]
    assert tree_index(window, layer, COL_SENSITIVITY).data().startswith(
        format_drop(result.cell(layer, "int8").drop, result.metric, True))
    bogus = result.to_dict()
    bogus["layers"] = ["no.such.layer"]
    (tmp_path / "other.json").write_text(json.dumps(bogus))
    controller.open_result(str(tmp_path / "other.json"))
    assert "another model" in window.last_error_dialog.text() and controller.result == result

    after = window.opened.loaded.module.state_dict()
    assert all(torch.equal(after[k], original[k]) for k in original)  # the sweep never changed the model


def test_cancel_mid_sweep(qtbot, digits_window, tmp_path):
    window = digits_window
    controller, panel = start(qtbot, window, tmp_path, settings="", samples=1000,
                              techniques=("prune", "lowrank", "quantize"))
    qtbot.waitUntil(lambda: controller.model.done >= 2, timeout=300000)
    panel.cancel_button.click()
    assert panel.cancel_button.text() == "Cancelling…"
    qtbot.waitUntil(lambda: panel.start_button.isEnabled(), timeout=60000)
    assert controller.result is None and not window.run.runner.busy
    assert panel.progress.format() == "cancelled"
    assert " cells measured; run again to resume" in panel.status.text()  # the sweep's own RunCancelled
    assert 0 < controller.model.done < controller.model.rowCount() * len(controller.model.settings)
    assert window.run.run_panel.run_button.isEnabled()


def test_a_sweep_during_a_run_asks_to_cancel_the_run_first(qtbot, digits_window, tmp_path, monkeypatch):
    window = digits_window
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    monkeypatch.setattr(QMessageBox, "question", staticmethod(lambda *args: answers.pop(0)))
    window.plan.document.set_plan(window.plan.document.plan.from_dict(
        {"rules": [{"layers": "*", "prune": {"mode": "unstructured", "amount": 0.5}}]}))
    run_panel = window.run.run_panel
    run_panel.data_combo.setEditText("digits")
    run_panel.epochs.setValue(50)
    run_panel.run_button.click()
    qtbot.waitUntil(lambda: len(run_panel.curve_points("train/loss")[0]) >= 1, timeout=240000)
    run = window.runner.current
    controller = window.sensitivity
    controller.cache_dir = tmp_path / "cache"
    controller.panel.data_combo.setEditText("digits")
    assert controller.panel.start_button.isEnabled()  # enabled: pressing it asks
    controller.start()  # No: the run goes on, no sweep
    assert window.runner.current is run and controller._job == "" and len(answers) == 1
    controller.start()  # Yes: the run is cancelled first, then the sweep starts
    assert controller._job == "sweep" and window.runner.current.job.kind == "sweep"
    qtbot.waitUntil(lambda: run.outcome == "cancelled", timeout=60000)
    assert "cancelled during" in run_panel.log.toPlainText() and run_panel.run_button.isEnabled()
    qtbot.waitUntil(lambda: controller.model.done >= 1, timeout=300000)
    controller.cancel()
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=60000)
    assert controller._job == "" and controller.panel.start_button.isEnabled()


def test_saved_table_opens_and_a_new_model_clears_it(qtbot, digits_window, tmp_path):
    from studio.core.pipelines.sensitivity import SensitivityCell, SensitivityResult, SweepSetting

    window = digits_window
    layers = ("features.0.0", "classifier.4")
    setting = SweepSetting("prune", "prune 50%", {"prune": {"mode": "unstructured", "amount": 0.5}})
    cells = tuple(SensitivityCell(name, setting.label, 0.01 * (i + 1), 0.9, 10, 40, 100) for i, name in enumerate(layers))
    path = tmp_path / "table.json"
    path.write_text(json.dumps(SensitivityResult("digits-cnn", "accuracy", 0.95, 200, (setting,), layers,
                                                 cells).to_dict()))
    controller = window.sensitivity
    controller.open_result(str(path))
    assert controller.dock.isVisible() and controller.model.index(1, 0).data() == "2.0"
    assert tree_index(window, "classifier.4", COL_SENSITIVITY).data() == "2.0 pp"
    assert not window.layers.view.isColumnHidden(COL_SENSITIVITY)
    with qtbot.waitSignal(window.modelShown, timeout=60000):
        window.reload()  # a freshly loaded model: the table was measured on another module
    assert controller.result is None and controller.model.rowCount() == 0
    assert window.layers.view.isColumnHidden(COL_SENSITIVITY)
    assert tree_index(window, "classifier.4", COL_SENSITIVITY).data() is None


def test_a_new_sweep_clears_the_trees_marks_in_a_turn_of_its_own(qtbot, digits_window, tmp_path):
    """The start's turn also brings the Sensitivity tab to the front; the tree's repaint for the old
    marks waits for the next turn, and never wipes the new sweep's marks."""
    window = digits_window
    controller, panel = start(qtbot, window, tmp_path, settings="prune: 50%", techniques=("prune",))
    qtbot.waitUntil(lambda: controller.result is not None and panel.start_button.isEnabled(), timeout=300000)
    tree = window.layers.model
    marked = dict(tree._sensitivity)
    assert marked
    cleared: list[bool] = []
    controller.model.modelReset.connect(lambda: cleared.append(not tree._sensitivity))
    panel.start_button.click()  # the same sweep again: its cells come from the cache
    assert tree._sensitivity == marked  # not in the start's turn
    qtbot.waitUntil(lambda: controller.result is not None and panel.start_button.isEnabled(), timeout=300000)
    assert cleared and cleared[-1]  # gone before the new table was laid out
    assert tree._sensitivity.keys() == marked.keys()  # the new result's marks stay
