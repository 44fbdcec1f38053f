"""RunPanel fed with the real events of a digits run, plus a 20k-point responsiveness check."""

from __future__ import annotations

import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402

from studio.core.base.events import (  # noqa: E402
    EvaluationProgress, Finished, Metric, Progress, RunCancelled, StageStarted,
)


@pytest.fixture
def panel(show):
    from studio.gui.qt_run_panel import RunPanel

    return show(RunPanel())


def _count(events: list[object], name: str) -> int:
    return sum(1 for e in events if isinstance(e, Metric) and e.name == name)


def test_real_run_fills_curves_progress_and_log(qtbot, panel, digits_run_events):
    assert isinstance(digits_run_events[-1], Finished)
    panel.reset()
    panel.set_running(True)
    for event in digits_run_events[:-1]:
        panel.handle_event(event)
    qtbot.waitUntil(lambda: not panel._timer.isActive(), timeout=2000)  # the ~15 Hz timer has flushed the points
    assert len(panel.curve_points("train/loss")[0]) == _count(digits_run_events, "train/loss") > 0
    assert len(panel.curve_points("val/loss")[0]) == _count(digits_run_events, "val/loss")
    assert len(panel.curve_points("val/accuracy")[0]) == _count(digits_run_events, "val/accuracy") > 0
    assert len(panel.curve_points("val/agreement")[0]) == _count(digits_run_events, "val/agreement")
    assert panel.curve_points("size/bytes")[0]
    steps = [e for e in digits_run_events if isinstance(e, Metric) and e.name == "train/loss"]
    assert panel.curve_points("train/loss")[1][-1] == pytest.approx(steps[-1].value)
    accuracy = [e.value for e in digits_run_events if isinstance(e, Metric) and e.name == "val/accuracy"]
    assert panel.curve_points("val/accuracy")[1] == pytest.approx([100 * a for a in accuracy])  # shown in %
    panel.handle_event(digits_run_events[-1])
    assert panel.progress.value() == panel.progress.maximum() == 100
    log = panel.log.toPlainText()
    for stage in ("validate", "apply", "measure", "evaluate", "finetune", "latency", "finished"):
        assert stage in log
    assert "features.1.0" in log  # layer changes are logged
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()
    panel.grab().save("/tmp/run_panel.png")

    panel.reset()
    assert panel.curve_points("train/loss") == ([], [])
    assert panel.log.toPlainText() == ""
    assert panel.progress.value() == 0


def test_progress_text_has_stage_and_eta(qtbot, panel):
    panel.reset()
    panel.set_running(True)
    panel.handle_event(StageStarted("finetune", "3 epoch(s), 300 steps on cpu"))
    panel._stage_t0 -= 0.05  # the stage began 50 ms ago
    panel.handle_event(Progress(120, 300, "epoch 1/3, 0.012 s/step"))
    panel.flush()
    text = panel.progress.format()
    assert text.startswith("finetune · 120/300 · ETA ")
    assert panel.progress.value() == 120 and panel.progress.maximum() == 300


def test_evaluation_progress_is_its_own_bar_without_eta(qtbot, panel, digits_run_events):
    """The panel tells evaluation from training steps by the event's type, not by its message."""
    evaluations = [e for e in digits_run_events if isinstance(e, EvaluationProgress)]
    assert evaluations and all(e.message.startswith("evaluating the ") for e in evaluations)
    panel.reset()
    panel.set_running(True)
    panel.handle_event(StageStarted("evaluate", "original and compressed on 360 samples"))
    panel._stage_t0 -= 1.0
    panel.handle_event(EvaluationProgress(3, 12, "evaluating the original model"))
    panel.flush()
    assert panel.progress.format() == "evaluating the original model · 3/12"  # its own label, no ETA
    panel.handle_event(Progress(3, 12, "evaluating is only a word here"))
    panel.flush()
    assert panel.progress.format().startswith("evaluate · 3/12 · ETA ")  # a plain Progress: the stage's bar


def test_cancel_shows_the_pipelines_own_message(qtbot, panel):
    panel.reset()
    panel.set_running(True)
    panel.handle_event(StageStarted("finetune", "300 steps"))
    detail = "cancelled during finetune after 42 fine-tuning steps; the original model is unchanged"
    panel.handle_event(RunCancelled("finetune", detail))
    assert panel.stage_label.text() == "C" + detail[1:]
    assert detail in panel.log.toPlainText() and panel.progress.format() == "cancelled · finetune"
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()


def test_buttons_emit_and_follow_running_state(qtbot, panel):
    assert panel.run_button.objectName() == "runButton" and panel.cancel_button.objectName() == "cancelButton"
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()
    with qtbot.waitSignal(panel.startRequested, timeout=1000):
        qtbot.mouseClick(panel.run_button, Qt.MouseButton.LeftButton)
    panel.set_running(True)
    assert not panel.run_button.isEnabled() and panel.cancel_button.isEnabled()
    assert not panel.data_combo.isEnabled() and not panel.epochs.isEnabled()
    with qtbot.waitSignal(panel.cancelRequested, timeout=1000):
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    panel.set_running(False)
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert panel.data_combo.isEnabled()


def test_cancelled_run_is_logged_and_start_enabled_again(qtbot, panel):
    panel.reset()
    panel.set_running(True)
    panel.handle_event(StageStarted("finetune", "1 epoch(s)"))
    panel.handle_event(Metric(1, "train/loss", 2.0))
    panel.handle_event(RunCancelled("finetune", "cancelled during finetune after 1 fine-tuning steps"))
    assert "cancelled" in panel.log.toPlainText()
    assert "cancelled" in panel.progress.format()
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()
    assert panel.curve_points("train/loss") == ([1.0], [2.0])  # the final flush drew the last point


def test_settings_round_trip_and_core_accepts_them(panel):
    from studio.core.pipelines.finetune import FinetuneSettings

    defaults = panel.settings_dict()
    assert defaults["data"] == "sample"
    assert FinetuneSettings.from_dict(defaults["finetune"]) == FinetuneSettings()
    recipe = {"data": "digits", "finetune": {"epochs": 3, "lr": 5e-4, "distill": False, "temperature": 2.5,
                                             "alpha": 0.4, "batch_size": 64, "eval_interval": 20}}
    panel.load_settings(recipe)
    assert panel.settings_dict() == recipe
    settings = FinetuneSettings.from_dict(panel.settings_dict()["finetune"])
    assert (settings.epochs, settings.lr, settings.distill, settings.batch_size) == (3, 5e-4, False, 64)
    assert panel.lr.isEnabled() and not panel.temperature.isEnabled()  # no distillation: T and α unused
    panel.load_settings({})
    assert panel.settings_dict()["finetune"] == defaults["finetune"]


def test_file_data_specs_ask_for_a_path(panel, monkeypatch):
    monkeypatch.setattr(panel.settings_box, "browse_data", lambda kind: f"/data/{kind}")
    panel.settings_box._data_chosen("imagefolder:…")
    assert panel.settings_dict()["data"] == "imagefolder:/data/imagefolder"
    monkeypatch.setattr(panel.settings_box, "browse_data", lambda kind: None)
    panel.settings_box._data_chosen("csv:…")  # dialog cancelled: the previous spec stays
    assert panel.settings_dict()["data"] == "imagefolder:/data/imagefolder"


def test_twenty_thousand_points_stay_fast(qtbot, panel):
    panel.reset()
    panel.set_running(True)
    panel.handle_event(StageStarted("finetune", "20000 steps"))
    start = time.perf_counter()
    for step in range(1, 20001):
        panel.handle_event(Metric(step, "train/loss", 1.0 / step + (step % 7) * 1e-3))
        panel.handle_event(Progress(step, 20000, "epoch 1/1"))
        if step % 500 == 0:
            panel.handle_event(Metric(step, "val/loss", 1.0 / step))
            qtbot.waitUntil(lambda: not panel._timer.isActive(), timeout=2000)  # flushes happen while points stream in
    feed_s = time.perf_counter() - start
    qtbot.waitUntil(lambda: not panel._timer.isActive(), timeout=2000)
    assert len(panel.curve_points("train/loss")[0]) == 20000
    start = time.perf_counter()
    panel.loss_plot.grab()  # a full repaint of the 20k-point chart (downsampled, clipped)
    paint_ms = 1000 * (time.perf_counter() - start)
    print(f"20k points: longest flush {panel.max_flush_ms:.1f} ms, repaint {paint_ms:.1f} ms, feeding {feed_s:.2f} s")
    assert panel.max_flush_ms < 100
    assert paint_ms < 500  # generous: measured ~tens of ms on a laptop-class CPU


def test_auto_learning_rate_and_find_lr_button(qtbot, panel):
    assert panel.settings_dict()["finetune"]["lr"] == "auto" and panel.lr.text() == "auto"
    panel.settings_box.set_auto_hint("auto: 3e-05, linear (pretrained transformer)")
    assert "pretrained transformer" in panel.settings_box.auto_hint.text()
    with qtbot.waitSignal(panel.findLrRequested, timeout=1000):
        qtbot.mouseClick(panel.settings_box.find_lr_button, Qt.MouseButton.LeftButton)
    panel.settings_box.set_lr(2e-5)
    assert panel.settings_dict()["finetune"]["lr"] == pytest.approx(2e-5)
    panel.load_settings({"finetune": {"lr": "auto", "patience": 2}})
    assert panel.settings_dict()["finetune"] == {"patience": 2, "epochs": 0, "lr": "auto", "distill": True,
                                                 "temperature": 4.0, "alpha": 0.7}
    panel.set_running(True)
    assert not panel.settings_box.find_lr_button.isEnabled()
    panel.set_running(False)


def test_best_step_is_marked_and_notes_are_logged(qtbot, panel):
    from studio.core.base.events import Note

    panel.reset()
    panel.set_running(True)
    panel.handle_event(Note("learning rate 3e-05: pretrained transformer"))
    for step, value in ((10, 0.8), (20, 0.7)):
        panel.handle_event(Metric(step, "val/accuracy", value))
    panel.handle_event(Metric(10, "best/accuracy", 0.8))
    panel.flush()
    assert panel.best_step == 10
    assert all(line.isVisible() and line.value() == 10 for line in panel.best_lines)
    assert "learning rate 3e-05" in panel.log.toPlainText()
    assert panel.curve_points("val/accuracy")[0] == [10.0, 20.0]  # the mark is not a curve point
    panel.reset()
    assert panel.best_step is None and not any(line.isVisible() for line in panel.best_lines)


def test_lr_finder_dialog_shows_the_curve_and_hands_back_the_rate(qtbot, show):
    import math

    from studio.core.base.events import LrProbe
    from studio.core.pipelines.lr_finder import LrFinderResult
    from studio.gui.qt_lr_finder import LrFinderDialog

    dialog = show(LrFinderDialog(), 560, 420)
    dialog.start()
    lrs = [10 ** (-6 + i / 5) for i in range(30)]
    losses = [1.0 + (math.log10(lr) + 2) ** 2 / 10 for lr in lrs]
    for step, (lr, loss) in enumerate(zip(lrs, losses), 1):
        dialog.handle_event(LrProbe(step, lr, loss, loss))
    dialog.handle_event(LrProbe(31, 1e0, float("nan"), float("inf")))  # non-finite points are not drawn
    qtbot.waitUntil(lambda: len(dialog.curve_points()[0]) == 30, timeout=2000)
    result = LrFinderResult(tuple(lrs), tuple(losses), tuple(losses), 1e-3, 1e-2, 3e-5, "pretrained transformer",
                            "the smoothed loss was lowest at lr 0.01")
    dialog.handle_event(Finished(result))
    assert dialog.marker.isVisible() and dialog.marker.value() == pytest.approx(-3)
    assert "1e-03" in dialog.message.text() or "0.001" in dialog.message.text()
    with qtbot.waitSignal(dialog.useLr, timeout=1000) as blocker:
        qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    assert blocker.args == [pytest.approx(1e-3)]


def test_find_lr_from_the_window_sets_the_rate(qtbot, digits_window):
    """The Run panel's button runs the range test on the plan; its suggestion lands in the settings."""
    panel = digits_window.run.run_panel
    assert "small network" in panel.settings_box.auto_hint.text()
    panel.data_combo.setEditText("digits")
    digits_window.run.lr_test_steps = 25  # a short range test: the machine is shared
    panel.settings_box.find_lr_button.click()
    dialog = digits_window.run.lr_dialog
    assert dialog is not None and dialog.isVisible() and not panel.run_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.use_button.isEnabled(), timeout=240000)
    qtbot.waitUntil(lambda: panel.run_button.isEnabled(), timeout=10000)
    assert len(dialog.curve_points()[0]) > 10 and dialog.marker.isVisible()
    dialog.use_button.click()
    assert panel.settings_dict()["finetune"]["lr"] == pytest.approx(max(round(dialog.suggested, 6), 1e-6))
    assert not dialog.isVisible()


def test_sample_data_is_offered_only_for_models_with_data_of_their_own(qtbot):
    from studio.gui.qt_run_settings import DATA_SPECS, RunSettingsBox

    box = RunSettingsBox()
    qtbot.addWidget(box)
    sample = box.data_combo.model().item(DATA_SPECS.index("sample"))
    assert box.data_combo.currentText() == "sample"
    box.set_own_data(False)  # a model from a file: "sample" would fail, so the default is none
    assert box.data_combo.currentText() == "" and not sample.isEnabled()
    assert box.settings_dict()["data"] == ""
    box.set_own_data(True)
    assert box.data_combo.currentText() == "sample" and sample.isEnabled()
    box.data_combo.setEditText("digits")
    box.set_own_data(False)  # a spec the user chose stays
    assert box.data_combo.currentText() == "digits"
