"""Sensitivity sweeps in the window: runs the core sweep on the window's job runner, fills
the heatmap live, turns clicks and target fits into undoable plan edits, and keeps the
tree's Sensitivity column and the compare view's prediction in step with the plan.

The sweep shares the run/export `JobRunner`, so the window runs one job at a time: while a
run or an export is busy Start is disabled, and while a sweep runs their Start buttons
are. Its events travel in a private envelope (`SweepBatch`), so the run controller, which
listens to the same runner, passes them by; failures arrive as a `SweepFailed` event.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog

from studio.core.base.errors import StudioError
from studio.core.base.events import Finished, RunCancelled, StageStarted
from studio.core.pipelines.sensitivity import CellDone, SensitivityResult, SweepPlanned
from studio.core.base.units import format_bytes, format_count, format_flops
from studio.gui.qt_layer_tree_model import COL_SENSITIVITY
from studio.gui.qt_resources import icon
from studio.gui.qt_sensitivity_jobs import SweepBatch, SweepFailed, default_cache_dir, enveloped, load_result
from studio.gui.qt_sensitivity_model import drop_colour, format_drop, is_percent
from studio.gui.qt_sensitivity_panel import SensitivityPanel
from studio.gui.qt_sensitivity_plan import (Prediction, plan_choices, plan_for_setting, predict, reference_label,
                                            tree_marks)

if TYPE_CHECKING:
    from studio.core.base.cancel import CancelToken
    from studio.gui.qt_main_window import MainWindow

JSON_FILTER = "Sensitivity results (*.json)"


class SensitivityController(QObject):
    def __init__(self, window: MainWindow, runner: Any, guarded: Callable[[], Sequence[Any]],
                 other_runners: Sequence[Any]) -> None:
        super().__init__(window)
        self.window = window  # for its plan, tree, compare view, status bar and dialogs
        self.runner = runner
        self.cache_dir: Path | None = default_cache_dir()
        self.panel = SensitivityPanel()
        self.model = self.panel.model
        self.result: SensitivityResult | None = None
        self.fitted: Any = None  # the last FittedPlan
        self.prediction: Prediction | None = None
        self.reference = ""
        self._guarded = guarded  # what must not start while a sweep runs (created after this controller)
        self._others = list(other_runners)
        self._job = ""  # "sweep" | "fit" while ours runs
        self._module: Any = None  # the module the table was measured on
        self._disabled: list[Any] = []
        self.dock = QDockWidget("Sensitivity", window)
        self.dock.setObjectName("sensitivityDock")
        self.dock.setWidget(self.panel)
        self.action = QAction(icon("sensitivity"), "Layer &sensitivity…", self)
        self.action.setIconText("Sensitivity")
        self.action.setShortcut(QKeySequence("F7"))
        self.action.setStatusTip("Measure how much each layer suffers from pruning, low rank and quantization")
        self.action.triggered.connect(lambda _c=False: self.show())
        self.panel.startRequested.connect(self.start)
        self.panel.cancelRequested.connect(self.cancel)
        self.panel.fitRequested.connect(self.fit)
        self.panel.openRequested.connect(self.open_result)
        self.panel.saveRequested.connect(self.save_result)
        self.panel.referenceChanged.connect(self.set_reference)
        self.panel.heatmap.cellClicked.connect(self.apply_cell)
        runner.event.connect(self._on_event)
        runner.busyChanged.connect(self._on_busy)
        for other in self._others:
            other.busyChanged.connect(lambda _busy: self._sync_enabled())
        window.plan.document.planChanged.connect(self._plan_changed)
        window.plan.projectionChanged.connect(lambda _p: self._update_prediction())
        window.modelShown.connect(self._model_shown)
        window.run.run_panel.startRequested.connect(self._run_starting)
        window.layers.view.setColumnHidden(COL_SENSITIVITY, True)
        self._sync_enabled()

    @classmethod
    def from_window(cls, window: MainWindow) -> SensitivityController:
        """Dock below the tree, tabbed with Run/Compare/Export; the sweep shares their runner."""
        run = window.run
        def guarded() -> list[Any]:
            # a new input spec re-traces the model, whose layers the sweep swaps in and out meanwhile
            spec = getattr(window, "spec_action", None)
            return [run.run_action, run.export_action, run.run_panel.run_button, run.export_panel.export_button,
                    *([spec] if spec is not None else [])]

        controller = cls(window, run.runner, guarded, [window.runner])
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, controller.dock)
        window.tabifyDockWidget(run.docks[-1], controller.dock)
        controller.dock.hide()
        return controller

    def show(self) -> None:
        self.dock.show()
        self.dock.raise_()

    # --- jobs ------------------------------------------------------------------------------
    def _idle(self) -> bool:
        return not self.runner.busy and not any(other.busy for other in self._others)

    def start(self) -> None:
        opened = self.window.opened
        if opened is None or not self._idle():
            return
        try:
            spec = self.panel.spec()
        except StudioError as exc:
            self.window.show_error(str(exc), "Cannot start the sweep")
            return
        loaded, data, cache = opened.loaded, self.panel.data_spec(), self.cache_dir

        def job(token: CancelToken) -> Iterator[object]:
            from studio.core.data.sources import open_dataset
            from studio.core.pipelines.sensitivity import sweep

            dataset = open_dataset(data, loaded) if data else None
            return sweep(loaded, dataset, spec, token, cache_dir=cache)

        self._module = loaded.module
        self.result = None
        self.model.clear()
        self._set_tree_marks({})
        self.panel.started()
        self.show()
        self.window.statusBar().showMessage("Measuring layer sensitivity…")
        self._run("sweep", job)

    def fit(self, target: Any) -> None:
        opened, result = self.window.opened, self.result
        if opened is None or result is None or not self._idle():
            if result is None:
                self.panel.fit_result.setText("Run a sweep first: the fit chooses from its table.")
            return
        loaded = opened.loaded

        def job(_token: CancelToken) -> Iterator[object]:
            from studio.core.pipelines.sensitivity import fit_to_target

            yield Finished(fit_to_target(result, loaded, target))

        self.panel.fit_result.setText("Fitting…")
        self._run("fit", job)

    def _run(self, kind: str, job: Callable[[CancelToken], Iterator[object]]) -> None:
        self._job = kind
        self.panel.set_running(kind == "sweep")
        self.runner.start(lambda token: enveloped(job, token))

    def cancel(self) -> None:
        if self._job:
            self.runner.cancel()

    # --- events ----------------------------------------------------------------------------
    def _on_event(self, event: object) -> None:
        if not self._job:
            return
        if isinstance(event, SweepFailed):
            if self._job == "sweep":
                self.panel.show_status(event.message)
            else:
                self.panel.fit_result.setText("")
            title = "Sensitivity sweep failed" if self._job == "sweep" else "Could not fit the plan"
            self.window.show_error(event.message, title)
        elif isinstance(event, SweepBatch):
            for inner in event.events:
                self._handle(inner)

    def _handle(self, event: object) -> None:
        panel = self.panel
        if isinstance(event, SweepPlanned):
            self.model.plan(event.settings, event.layers, event.baseline, event.metric)
            self.panel.heatmap.reapply_order()
            unit = " (pp)" if is_percent(event.metric) else ""
            panel.heatmap.set_metric_label(event.metric, unit)
            panel.show_progress(0, len(event.settings) * len(event.layers))
            panel.show_status(f"{len(event.layers)} layers × {len(event.settings)} settings · baseline "
                              f"{event.metric} {_metric(event.baseline, event.metric)}")
        elif isinstance(event, CellDone):
            self.model.add_cell(event.cell)
            panel.show_progress(event.done, event.total)
        elif isinstance(event, StageStarted) and self._job == "sweep":
            panel.show_status(f"{event.name}: {event.detail}" if event.detail else event.name)
        elif isinstance(event, RunCancelled):
            panel.cancelled(f"Cancelled: {event.detail}" if event.detail else "Cancelled")
        elif isinstance(event, Finished) and self._job == "sweep":
            self.set_result(event.result)
        elif isinstance(event, Finished) and self._job == "fit":
            self._apply_fit(event.result)

    def _on_busy(self, busy: bool) -> None:
        if busy:
            if self._job:
                self._disabled = [w for w in self._guarded() if w.isEnabled()]
                for widget in self._disabled:
                    widget.setEnabled(False)
        elif self._job:
            job, self._job = self._job, ""
            for widget in self._disabled:
                widget.setEnabled(True)
            self._disabled = []
            if job == "sweep" and self.result is None and self.panel.progress.format() != "cancelled":
                self.model.flush()
                self.panel.cancelled("Cancelled. The measured cells stay in the table and in the cache: "
                                     "Start resumes where the sweep stopped.")
        self._sync_enabled()

    def _sync_enabled(self) -> None:
        opened = self.window.opened is not None
        self.action.setEnabled(opened)
        self.panel.set_running(self._job == "sweep", allowed=opened and self._idle())
        self.panel.fit_button.setEnabled(self.result is not None and self._idle())
        self.panel.save_button.setEnabled(self.result is not None)

    # --- results -----------------------------------------------------------------------------
    def set_result(self, result: SensitivityResult) -> None:
        """Show a finished (or loaded) table; the tree column and the plan frames follow."""
        self.result = result
        self.model.set_result(result)
        self.panel.heatmap.reapply_order()
        self.panel.heatmap.set_metric_label(result.metric, " (pp)" if is_percent(result.metric) else "")
        if self.reference not in {s.label for s in result.settings}:
            self.reference = reference_label(result)
        self.panel.set_references([s.label for s in result.settings], self.reference)
        cells = sum(1 for c in result.cells if c.ok)
        self.panel.finished(f"{len(result.layers)} layers × {len(result.settings)} settings on {result.samples} "
                            f"samples · baseline {result.metric} {_metric(result.baseline, result.metric)} · "
                            f"column in the tree: drop at {self.reference}")
        self.window.statusBar().showMessage(f"Sensitivity: {cells} cells measured; click a cell to plan it")
        view = self.window.layers.view
        if view.isColumnHidden(COL_SENSITIVITY):
            view.setColumnHidden(COL_SENSITIVITY, False)
            view.setColumnWidth(COL_SENSITIVITY, max(view.columnWidth(COL_SENSITIVITY), 175))
        self._plan_changed()
        self._sync_enabled()

    def set_reference(self, label: str) -> None:
        """The tree's Sensitivity column shows the drop at `label`."""
        if self.result is not None and self.result.setting(label) is not None:
            self.reference = label
            self._update_marks()

    def open_result(self, path: str | None = None) -> None:
        """Show a saved table (`studio sensitivity --out`); it must be of this model's layers."""
        opened = self.window.opened
        if opened is None or not self._idle():
            return
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self.window, "Open sensitivity result", "", JSON_FILTER)
        if not path:
            return
        try:
            result = load_result(path, opened.loaded.module)
        except StudioError as exc:
            self.window.show_error(str(exc), "Could not open the sensitivity result")
            return
        self._module = opened.loaded.module
        self.set_result(result)
        self.show()

    def save_result(self, path: str | None = None) -> None:
        if self.result is None:
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self.window, "Save sensitivity result", "sensitivity.json",
                                                  JSON_FILTER)
        if not path:
            return
        from studio.core.base.atomic import write_text_atomic

        try:
            write_text_atomic(path, json.dumps(self.result.to_dict(), indent=1) + "\n")
            self.window.statusBar().showMessage(f"Saved the sensitivity table to {path}")
        except OSError as exc:
            self.window.show_error(f"Could not write {path}: {exc.strerror or exc}.", "Could not save")

    def apply_cell(self, layer: str, kind: str, label: str) -> None:
        """Click on the heatmap: that layer's plan becomes that setting (one undoable edit)."""
        document = self.window.plan.document
        if kind == "setting":
            setting = self.model.settings[[s.label for s in self.model.settings].index(label)]
            module = dict(self._module.named_modules()).get(layer) if self._module is not None else None
            changed = document.set_plan(plan_for_setting(document.plan, layer, setting, module),
                                        f"Set {layer} to {label}")
        elif kind == "keep_float":
            changed = document.mark([layer], "quantize", None)
        else:
            return
        if changed:
            self.window.statusBar().showMessage(f"Plan: {layer} → {label or 'float'} (Ctrl+Z undoes)")

    def _apply_fit(self, fitted: Any) -> None:
        document = self.window.plan.document
        plan = replace(fitted.plan, settings={**document.plan.settings, **fitted.plan.settings})
        self.fitted = fitted
        document.set_plan(plan, "Fit plan to target")
        self._reveal([layer for layer, _ in fitted.choices])
        metric = self.result.metric if self.result else "accuracy"
        verdict = "meets the target" if fitted.met else "<span style='color:#c5221f'>cannot meet the target</span>"
        self.panel.fit_result.setText(
            f"{len(fitted.choices)} layer(s) · predicted drop <b>{format_drop(fitted.predicted_drop, metric, True)}"
            f"</b> · {_size(fitted.predicted_bytes)} · {verdict} <span style='color:#5f6368'>(marked in the tree; "
            "Ctrl+Z undoes)</span>")
        self.panel.fit_result.setToolTip(
            f"Solver: {fitted.solver}<br>predicted: {_size(fitted.predicted_bytes)}, "
            f"{format_count(fitted.predicted_params)} params, {format_flops(fitted.predicted_flops)}<br>"
            + "<br>".join(f"{layer}: {label}" for layer, label in fitted.choices))
        self.window.statusBar().showMessage(f"Fitted plan: predicted drop {format_drop(fitted.predicted_drop, metric, True)}")

    def _reveal(self, layers: list[str]) -> None:
        """Scroll the tree to the first planned layer, so the marks are in view."""
        tree, panel = self.window.opened.tree if self.window.opened else None, self.window.layers
        names = [name for name in layers if tree is not None and name in tree]
        if names:
            index = panel.proxy.mapFromSource(panel.model.index_of(tree[names[0]]))
            panel.view.scrollTo(index, panel.view.ScrollHint.PositionAtCenter)

    # --- plan, tree and compare view ----------------------------------------------------------
    def _plan_changed(self, *_: Any) -> None:
        self._update_marks()
        self._update_prediction()

    def _choices(self) -> tuple[dict[str, set[str]], tuple[str, ...]]:
        opened = self.window.opened
        if self.result is None or opened is None or opened.loaded.module is not self._module:
            return {}, ()
        return plan_choices(self.window.plan.document.plan, opened.loaded.module, self.result)

    def _update_marks(self) -> None:
        chosen, _ = self._choices()
        self.panel.heatmap.set_chosen(chosen)
        if self.result is not None:
            metric = self.result.metric
            self._set_tree_marks(tree_marks(self.result, self.reference, chosen, lambda d: drop_colour(d, metric),
                                            lambda d, unit: format_drop(d, metric, unit)))

    def _set_tree_marks(self, marks: dict[str, Any]) -> None:
        self.window.layers.model.set_sensitivity(marks)

    def _update_prediction(self) -> None:
        if self.result is None:
            self.prediction = None
        else:
            prediction = predict(self.result, *self._choices())
            projection = self.window.plan.projection
            if projection is not None and self.window.plan.document.plan.rules:
                prediction = replace(prediction, bytes=projection.after.bytes, params=projection.after.params)
            self.prediction = prediction if prediction.layers else None

    def _run_starting(self) -> None:
        """A run of the plan starts: its compare view will show this prediction next to the measurement."""
        self._update_prediction()
        self.window.run.compare.set_prediction(self.prediction)

    def _model_shown(self) -> None:
        opened = self.window.opened
        if opened is not None and opened.loaded.module is self._module and self.result is not None:
            self._update_marks()  # the same model inspected again: the tree was rebuilt
        elif self._module is not None:
            self.result, self.fitted, self._module = None, None, None
            self.model.clear()
            self._set_tree_marks({})
            self.window.layers.view.setColumnHidden(COL_SENSITIVITY, True)
            self.panel.show_status("Measure how much each layer suffers from each change.")
            self.panel.progress.setFormat("")
            self._update_prediction()
        self._sync_enabled()


def _metric(value: float, metric: str) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return f"{100 * value:.1f}%" if is_percent(metric) else f"{value:.4g}"


def _size(value: int | None) -> str:
    return format_bytes(value) if value else "size n/a"


__all__ = ["SensitivityController"]
