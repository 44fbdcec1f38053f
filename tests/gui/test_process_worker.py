"""The window's jobs run in a child process: a native crash there is an error dialog naming the
stage while the window, its plan and its model live on; cancel ends the job within a second;
the result comes back as a folder the window reopens when the user keeps it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from studio.core.base.events import StageStarted
from studio.core.base.resources import resource
from studio.core.model.loaders import LoadRequest
from studio.core.pipelines.jobs import SavedRun
from studio.core.plan import CompressionPlan
from studio.gui.qt_process_worker import ProcessWorker

MODELS = Path(__file__).parents[1] / "core" / "process_models.py"


@pytest.fixture
def window(qtbot):
    from studio.gui.qt_main_window import MainWindow

    assert ProcessWorker.enabled
    window = MainWindow()
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()


def open_in(qtbot, window, source: str) -> None:
    with qtbot.waitSignal(window.modelShown, timeout=120000):
        window.open_source(LoadRequest(source))
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=60000)


def snapshot(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def unchanged(module, before) -> bool:
    after = module.state_dict()
    return after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def start_run(window, epochs: int, data: str, plan: CompressionPlan | None = None):
    if plan is not None:
        window.plan.document.set_plan(plan)
    panel = window.run.run_panel
    panel.data_combo.setEditText(data)
    panel.epochs.setValue(epochs)
    panel.distill.setChecked(True)
    panel.run_button.click()
    return panel


def test_a_crash_in_the_child_is_a_dialog_naming_the_stage_and_the_window_survives(qtbot, window):
    open_in(qtbot, window, f"{MODELS}:AbortNet")
    loaded = window.opened.loaded
    weights = snapshot(loaded.module)
    panel = start_run(window, epochs=1, data="random:64")
    qtbot.waitUntil(lambda: window.last_error_dialog is not None and window.last_error_dialog.isVisible(),
                    timeout=120000)
    dialog = window.last_error_dialog
    assert dialog.windowTitle() == "Run failed"
    assert "crashed during fine-tuning" in dialog.text() and "SIGABRT" in dialog.text()
    dialog.close()
    qtbot.waitUntil(lambda: panel.run_button.isEnabled(), timeout=10000)
    assert window.isVisible() and window.opened.loaded is loaded and unchanged(loaded.module, weights)
    # the next job gets a fresh worker: the same window runs again (no fine-tuning, so no abort)
    start_run(window, epochs=0, data="random:64")
    qtbot.waitUntil(lambda: window.run.result is not None, timeout=120000)
    assert isinstance(window.run.result, SavedRun)


def test_cancel_in_fine_tuning_ends_within_a_second_and_the_log_says_so(qtbot, window):
    open_in(qtbot, window, "sample:digits-cnn")
    loaded = window.opened.loaded
    weights = snapshot(loaded.module)
    stages: list[str] = []
    window.runner.event.connect(lambda e: stages.append(e.name) if isinstance(e, StageStarted) else None)
    panel = start_run(window, 50, "digits", CompressionPlan.load(resource("recipes", "digits-prune-quantize.yaml")))
    qtbot.waitUntil(lambda: len(panel.curve_points("train/loss")[0]) >= 1, timeout=240000)
    clicked = time.monotonic()
    with qtbot.waitSignal(window.runner.done, timeout=5000):
        panel.cancel_button.click()
    seconds = time.monotonic() - clicked
    print(f"cancel in fine-tuning: {seconds:.3f} s from the click to idle")
    assert seconds <= 1.0
    assert "cancelled during finetune" in panel.log.toPlainText()
    assert stages[:2] == ["open", "validate"] and "finetune" in stages
    assert panel.run_button.isEnabled() and window.run.result is None
    assert window.opened.loaded is loaded and unchanged(loaded.module, weights)


def test_the_result_comes_back_as_a_folder_and_is_rebuilt_when_kept(qtbot, window, tmp_path):
    open_in(qtbot, window, "sample:digits-cnn")
    original = window.opened.loaded
    weights = snapshot(original.module)
    start_run(window, 0, "digits", CompressionPlan.load(resource("recipes", "digits-prune-quantize.yaml")))
    qtbot.waitUntil(lambda: window.run.result is not None, timeout=240000)
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=10000)
    result = window.run.result
    assert isinstance(result, SavedRun) and (result.folder / "model.safetensors").is_file()
    assert window.run.compare.model.rowCount() > 0
    with qtbot.waitSignal(window.modelShown, timeout=60000):
        window.run.compare.keep_button.click()
    kept = window.opened.loaded
    assert window.opened.tree.total_params == result.report.after.params
    assert kept.extras["folder"] == str(result.folder) and kept.module is not original.module
    assert unchanged(original.module, weights)
    # a job on the kept model reopens it in the child from that folder (PyTorch timed on the original)
    from studio.core.pipelines.export.request import ExportRequest
    from studio.gui.qt_process_worker import child_request

    assert child_request(window.current).source == str(result.folder)
    assert kept.extras["baseline_request"].source == "sample:digits-cnn"
    window.run.start_export(ExportRequest("onnx", tmp_path / "kept.onnx", samples=32))
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=240000)
    assert (tmp_path / "kept.onnx").is_file() and window.last_error_dialog is None
