"""Marking layers from the tree edits the plan, updates the projected budget and undoes."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel

from studio.core.plan import CompressionPlan
from studio.gui.qt_layer_tree_model import COL_PLAN


def select(window, *names):
    layers = window.layers
    selection = layers.view.selectionModel()
    selection.clearSelection()
    for name in names:
        index = layers.proxy.mapFromSource(layers.model.index_of(window.opened.tree[name]))
        selection.select(index, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)


def mark_via_menu(qtbot, window, key, names, edit=None):
    select(window, *names)
    menu = window.plan.build_menu()
    action = next(a for a in menu.actions() if a.objectName() == f"mark_{key}")
    assert action.isEnabled()
    action.trigger()
    dialog = window.plan.last_dialog
    assert dialog.objectName() == "techniqueDialog" and dialog.isVisible()
    if edit:
        edit(dialog)
    dialog.accept()
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=2000)


def test_context_menu_marks_updates_budget_and_undo_restores(qtbot, digits_window):
    window = digits_window
    model = window.layers.model
    tree = window.opened.tree
    mark_via_menu(qtbot, window, "quantize", ["classifier.1", "classifier.4"])
    plan = window.plan.document.plan
    assert [r.layers for r in plan.rules] == ["classifier.1", "classifier.4"]
    projection = window.plan.projection
    assert set(projection.layers) == {"classifier.1", "classifier.4"}
    assert projection.after.bytes < projection.before.bytes == tree.total_bytes
    assert "quantize: int8" in model.plan_text(tree["classifier.1"])
    assert "(−" in model.plan_text(tree["classifier.1"])  # the projected saving shows on the row
    assert "→" in window.plan.budget.text() and "Plan" in window.plan.budget.text()
    index = model.index_of(tree["classifier.1"], COL_PLAN)
    assert index.data() == model.plan_text(tree["classifier.1"])

    mark_via_menu(qtbot, window, "prune", ["features.0.0"])
    assert len(window.plan.document.plan.rules) == 3
    window.plan.undo_action.trigger()
    assert len(window.plan.document.plan.rules) == 2
    window.plan.undo_action.trigger()
    assert window.plan.document.plan == CompressionPlan()
    assert model.plan_text(tree["classifier.1"]) == "" and window.plan.projection.after == window.plan.projection.before
    window.plan.redo_action.trigger()
    assert len(window.plan.document.plan.rules) == 2


def test_clear_and_double_click_edit(qtbot, digits_window):
    window = digits_window
    mark_via_menu(qtbot, window, "prune", ["classifier.1"])
    select(window, "classifier.1")
    clear = next(a for a in window.plan.build_menu().actions() if a.objectName() == "clearMarks")
    clear.trigger()
    assert window.plan.document.plan == CompressionPlan()
    window.plan.undo_action.trigger()
    index = window.layers.proxy.mapFromSource(window.layers.model.index_of(window.opened.tree["classifier.1"], COL_PLAN))
    window.plan._on_double_click(index)
    dialog = window.plan.last_dialog
    assert dialog.key == "prune" and dialog.config() == window.plan.document.plan.rules[0].techniques["prune"]


def test_recipe_round_trip_and_problems_in_budget(qtbot, digits_window, tmp_path):
    window = digits_window
    mark_via_menu(qtbot, window, "quantize", ["classifier.1"])
    window.plan.save_recipe(str(tmp_path / "r.yaml"))
    assert CompressionPlan.load(tmp_path / "r.yaml") == window.plan.document.plan
    window.plan.document.set_plan(CompressionPlan.from_dict({"rules": [{"layers": "nope.*", "prune": {"amount": 0.5}}]}))
    text = window.plan.budget.text()
    assert "Problem:" in text and "matches no layer" in text  # the reason in view, not only in a tooltip
    assert "matches no layer" in window.plan.budget.toolTip()
    window.plan.open_recipe(str(tmp_path / "r.yaml"))
    assert [r.layers for r in window.plan.document.plan.rules] == ["classifier.1"]
    window.plan.open_recipe(str(tmp_path / "missing.yaml"))
    assert window.last_error_dialog is not None and window.last_error_dialog.isVisible()


def test_new_model_starts_a_new_plan(qtbot, digits_window, tmp_path):
    """(Reopening the same model restores its unsaved plan instead: test_plan_autosave.py.)"""
    from studio.core.model.loaders import LoadRequest

    window = digits_window
    mark_via_menu(qtbot, window, "quantize", ["classifier.1"])
    model_file = tmp_path / "net.py"
    model_file.write_text("from torch import nn\n\ndef Net():\n    return nn.Sequential(nn.Linear(4, 4))\n")
    with qtbot.waitSignal(window.modelShown, timeout=60000):
        window.open_source(LoadRequest(f"{model_file}:Net"))
    assert window.plan.document.plan == CompressionPlan() and not window.plan.document.undo_stack.canUndo()
