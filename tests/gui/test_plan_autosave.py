"""Unsaved plans are never lost: they survive closing the window and come back, undoable,
when the same model is opened again; saving the recipe retires the autosave."""

from __future__ import annotations

from studio.core.model.loaders import LoadRequest
from studio.core.plan import CompressionPlan
from studio.gui.qt_plan_autosave import RESTORED, autosave_folder

PLAN = CompressionPlan.from_dict({"rules": [{"layers": "classifier.1", "prune": {"amount": 0.5}}]})


def open_window(qtbot, source="sample:digits-cnn"):
    from studio.gui.qt_main_window import MainWindow

    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    with qtbot.waitSignal(window.modelShown, timeout=60000):
        window.open_source(LoadRequest(source))
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=10000)
    return window


def autosaves():
    folder = autosave_folder()
    return sorted(folder.glob("plan-*.yaml")) if folder.is_dir() else []


def test_unsaved_plan_comes_back_after_closing(qtbot, digits_window):
    digits_window.plan.document.set_plan(PLAN, "Mark")
    assert len(autosaves()) == 1
    digits_window.close()

    again = open_window(qtbot)
    assert again.plan.document.plan == PLAN
    qtbot.waitUntil(lambda: again.statusBar().currentMessage() == RESTORED, timeout=2000)
    again.plan.undo_action.trigger()
    assert again.plan.document.plan == CompressionPlan()
    assert autosaves() == []  # back at the saved (empty) state: nothing unsaved to keep
    again.run.shutdown()


def test_saving_the_recipe_retires_the_autosave(qtbot, digits_window, tmp_path):
    digits_window.plan.document.set_plan(PLAN, "Mark")
    assert autosaves()
    digits_window.plan.save_recipe(str(tmp_path / "plan.yaml"))
    assert autosaves() == []
    digits_window.close()
    again = open_window(qtbot)
    assert again.plan.document.plan == CompressionPlan()
    again.run.shutdown()


def test_opening_another_model_keeps_the_first_models_autosave(qtbot, digits_window, tmp_path):
    digits_window.plan.document.set_plan(PLAN, "Mark")
    model_file = tmp_path / "net.py"
    model_file.write_text("from torch import nn\n\ndef Net():\n    return nn.Sequential(nn.Linear(4, 4))\n")
    with qtbot.waitSignal(digits_window.modelShown, timeout=60000):
        digits_window.open_source(LoadRequest(f"{model_file}:Net"))
    assert digits_window.plan.document.plan == CompressionPlan() and len(autosaves()) == 1
    with qtbot.waitSignal(digits_window.modelShown, timeout=60000):
        digits_window.open_source(LoadRequest("sample:digits-cnn"))
    assert digits_window.plan.document.plan == PLAN
