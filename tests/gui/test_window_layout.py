"""The first ten minutes at 1366×768: what a new user sees must fit, read and behave."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QToolButton

from studio.core.model.loaders import LoadRequest
from studio.core.plan import CompressionPlan
from studio.gui.qt_layer_tree_model import COL_NAME, COL_PLAN

LONG_PLAN = {"rules": [{"layers": "features.3.pointwise.0", "prune": {"mode": "structured", "amount": 0.5}}]}


def _toolbar_button(window, action) -> QToolButton:
    toolbar = window.findChild(type(window.addToolBar("x")), "mainToolbar")
    return toolbar.widgetForAction(action)


def test_plan_actions_need_a_model(window):
    plan = window.plan
    assert not plan.add_rule_action.isEnabled()
    assert not plan.save_recipe_action.isEnabled()
    assert not plan.clear_plan_action.isEnabled()


def test_toolbar_keeps_run_and_export_after_a_long_undo_text(qtbot, digits_window):
    window = digits_window
    window.resize(1366, 768)
    window.plan.document.set_plan(CompressionPlan.from_dict(LONG_PLAN))
    undo = window.plan.undo_action
    assert undo.isEnabled() and len(undo.text()) > len("Undo")
    button = _toolbar_button(window, undo)
    assert button.text() == "Undo"
    qtbot.waitUntil(lambda: _toolbar_button(window, window.run.export_action).isVisible(), timeout=5000)
    export = _toolbar_button(window, window.run.export_action)
    assert export.geometry().right() <= window.width()
    assert window.plan.clear_plan_action.isEnabled() and window.plan.add_rule_action.isEnabled()


def test_status_tips_show_no_mnemonic(window):
    assert "&" not in window.expand_action.statusTip()
    assert window.expand_action.statusTip() == "Expand all"


def test_escape_clears_the_filter(qtbot, digits_window):
    edit = digits_window.layers.filter_edit
    edit.setFocus()
    qtbot.keyClicks(edit, "conv")
    assert edit.text() == "conv"
    qtbot.keyClick(edit, Qt.Key.Key_Escape)
    assert edit.text() == ""


def test_plan_column_sits_next_to_the_name(digits_window):
    header = digits_window.layers.view.header()
    assert header.visualIndex(COL_NAME) == 0 and header.visualIndex(COL_PLAN) == 1


def test_budget_figures_never_wrap_inside_a_number(digits_window):
    digits_window.plan.document.set_plan(CompressionPlan.from_dict(LONG_PLAN))
    text = digits_window.plan.budget.text()
    assert "params\u00a0" in text and " k" not in text and " kB" not in text


def test_details_wrap_at_dots_not_inside_numbers(digits_window):
    from studio.gui.qt_details_panel import _wrappable

    assert _wrappable("bert.encoder.layer.3.intermediate.dense").count("\u200b") == 4
    assert _wrappable("22.7 M  (22,713,986)") == "22.7\u00a0M  (22,713,986)"


def test_layout_is_remembered(qtbot, show):
    from studio.gui.qt_main_window import MainWindow
    from studio.gui.qt_resources import settings

    first = show(MainWindow(), 1100, 700)
    first.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, first.details)  # a dock layout the user made
    first.close()
    assert settings().value("window/geometry") is not None
    second = MainWindow()
    qtbot.addWidget(second)
    assert second.dockWidgetArea(second.details) == Qt.DockWidgetArea.LeftDockWidgetArea
    second.close()


def test_a_new_model_starts_with_most_of_the_height_for_the_tree(qtbot, window):
    """At 1366×768 the Run dock waits for Run plan (F6); the tree gets the height."""
    window.resize(1366, 768)
    with qtbot.waitSignal(window.modelShown, timeout=60000):
        window.open_source(LoadRequest("sample:digits-cnn"))
    assert not window.run.docks[0].isVisible()
    window.run.run_action.trigger()
    qtbot.waitUntil(lambda: window.run.docks[0].isVisible(), timeout=5000)


def test_every_dock_fits_a_1366x768_screen(qtbot, window):
    """No dock may force the window past a laptop screen (the Run dock once needed 799 px of height
    and the Sensitivity dock 1421 px of width): their controls scroll or cut instead."""
    from PySide6.QtWidgets import QDockWidget

    window.resize(1366, 768)
    for dock in window.findChildren(QDockWidget):
        dock.show()
        hint = window.minimumSizeHint()
        assert hint.width() <= 1366 and hint.height() <= 768, (dock.objectName(), hint)
        dock.hide()
