"""Sensitivity sweeps in the window: runs the core sweep on the window's job runner, fills
the heatmap live, turns clicks and target fits into undoable plan edits, and keeps the
tree's Sensitivity column and the compare view's prediction in step with the plan.

The sweep runs on the window's one `JobRunner`: starting it while another job runs asks to
cancel that job first. Only this controller's jobs reach it (each job has its own handle).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QWidget

from studio.core.base.errors import StudioError
from studio.core.base.events import Finished, RunCancelled, StageStarted
from studio.core.pipelines.sensitivity import CellDone, SensitivityResult, SweepPlanned
from studio.core.base.units import format_bytes, format_count, format_flops
from studio.gui.qt_layer_tree_model import COL_SENSITIVITY
from studio.gui.qt_job_docks import raise_dock
from studio.gui.qt_resources import icon
from studio.gui.qt_sensitivity_jobs import default_cache_dir, load_result
from studio.gui.qt_sensitivity_model import drop_colour, format_drop, is_percent
from studio.gui.qt_sensitivity_panel import SensitivityPanel
from studio.gui.qt_sensitivity_plan import (Prediction, plan_choices, plan_for_setting, predict, reference_label,
                                            tree_marks)
from studio.gui.qt_process_worker import sweep_spec
from studio.gui.qt_worker import Job, JobHandle, JobRunner, ask_to_cancel

if TYPE_CHECKING:
    from studio.core.base.cancel import CancelToken
    from studio.gui.qt_layer_view import LayerTreePanel
    from studio.gui.qt_open_controller import CurrentModel
    from studio.gui.qt_plan_document import PlanDocument

JSON_FILTER = "Sensitivity results (*.json)"


class SensitivityController(QObject):
    """The Sensitivity dock (created here, placed by the window) and its jobs."""

    def __init__(self, runner: JobRunner, current: CurrentModel, document: PlanDocument, layers: LayerTreePanel,
                 status: Callable[..., None], errors: Callable[[str, str], None], parent: QWidget) -> None:
        super().__init__(parent)
        self.runner, self.current, self.document, self.layers = runner, current, document, layers
        self._status, self._errors, self._parent = status, errors, parent
        self.projection: Any = None  # the plan's what-if projection (the window forwards it)
        self.cache_dir: Path | None = default_cache_dir()
        self.panel = SensitivityPanel()
        self.model = self.panel.model
        self.result: SensitivityResult | None = None
        self.fitted: Any = None  # the last FittedPlan
        self.prediction: Prediction | None = None
        self.reference = ""
        self._job = ""  # "sweep" | "fit" while ours runs
        self._handle: JobHandle | None = None
        self._module: Any = None  # the module the table was measured on
        self._configs: dict = {}  # (setting label, layer) → configs, for this table and model (plan_choices)
        self.dock = QDockWidget("Sensitivity")
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
        document.planChanged.connect(self._plan_changed)
        layers.view.setColumnHidden(COL_SENSITIVITY, True)
        self.dock.hide()
        self._sync_enabled()

    def show(self) -> None:
        raise_dock(self.dock)  # its tab, not QDockWidget.raise_: that repaints the whole window

    # --- jobs ------------------------------------------------------------------------------
    def start(self) -> None:
        opened = self.current.opened
        if opened is None or self._job:
            return
        try:
            spec = self.panel.spec()
        except StudioError as exc:
            self._errors(str(exc), "Cannot start the sweep")
            return
        if not ask_to_cancel(self.runner, self._parent, "measure layer sensitivity"):
            return
        loaded, data, cache = opened.loaded, self.panel.data_spec(), self.cache_dir

        def job(token: CancelToken) -> Iterator[object]:
            from studio.core.data.sources import open_dataset
            from studio.core.pipelines.sensitivity import sweep

            dataset = open_dataset(data, loaded) if data else None
            return sweep(loaded, dataset, spec, token, cache_dir=cache)

        self._module = loaded.module
        self.result = None
        self._configs = {}
        self.model.clear()
        # the tree's old marks go in a turn of their own (the tree repaints; the Sensitivity tab comes to
        # the front in this one); posted before any of the sweep's events, so never after its result
        QTimer.singleShot(0, self, lambda: self._set_tree_marks({}) if self.result is None else None)
        self.panel.started()
        self.show()
        self._status("Measuring layer sensitivity…")
        self._run(Job("sweep", "the sensitivity sweep", job, spec=sweep_spec(self.current, spec, data, cache)))

    def fit(self, target: Any) -> None:
        opened, result = self.current.opened, self.result
        if opened is None or result is None or self._job:
            if result is None:
                self.panel.fit_result.setText("Run a sweep first: the fit chooses from its table.")
            return
        if not ask_to_cancel(self.runner, self._parent, "fit a plan to the target"):
            return
        loaded = opened.loaded

        def job(_token: CancelToken) -> Iterator[object]:
            from studio.core.pipelines.sensitivity import fit_to_target

            yield Finished(fit_to_target(result, loaded, target))

        self.panel.fit_result.setText("Fitting…")
        self._run(Job("fit", "fitting the plan", job))

    def _run(self, job: Job) -> None:
        self._job = kind = job.kind
        self.panel.set_running(kind == "sweep")
        said: list[RunCancelled] = []
        handle = self._handle = self.runner.start(job)
        handle.event.connect(lambda event: self._on_event(kind, event, said))
        handle.failed.connect(lambda message, _option: self._on_failed(kind, message))
        handle.ended.connect(lambda outcome: self._on_ended(kind, outcome, bool(said)))
        self._sync_enabled()

    def cancel(self) -> None:
        if self._handle is not None and not self._handle.outcome:
            self._handle.cancel()

    # --- events ----------------------------------------------------------------------------
    def _on_failed(self, kind: str, message: str) -> None:
        if kind == "sweep":
            self.panel.show_status(message)
        else:
            self.panel.fit_result.setText("")
        self._errors(message, "Sensitivity sweep failed" if kind == "sweep" else "Could not fit the plan")

    def _on_event(self, kind: str, event: object, said: list[RunCancelled]) -> None:
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
        elif isinstance(event, StageStarted) and kind == "sweep":
            panel.show_status(f"{event.name}: {event.detail}" if event.detail else event.name)
        elif isinstance(event, RunCancelled):
            said.append(event)
            self.model.flush()
            panel.cancelled(f"Cancelled: {event.detail}. The measured cells stay in the table and in the cache."
                            if event.detail else "Cancelled")
        elif isinstance(event, Finished) and kind == "sweep":
            self.set_result(event.result)
        elif isinstance(event, Finished) and kind == "fit":
            self._apply_fit(event.result)

    def _on_ended(self, kind: str, outcome: str, said: bool) -> None:
        self._job, self._handle = "", None
        if kind == "sweep" and self.result is None and not said:
            self.model.flush()
            self.panel.cancelled("Cancelled. The measured cells stay in the table and in the cache: "
                                 "Start resumes where the sweep stopped." if outcome == "cancelled" else
                                 "Stopped. The measured cells stay in the table and in the cache.")
        self._sync_enabled()

    def _sync_enabled(self) -> None:
        opened = self.current.opened is not None
        self.action.setEnabled(opened)
        self.panel.set_running(self._job == "sweep", allowed=opened and not self._job)
        self.panel.fit_button.setEnabled(self.result is not None and not self._job)
        self.panel.save_button.setEnabled(self.result is not None)

    # --- results -----------------------------------------------------------------------------
    def set_result(self, result: SensitivityResult) -> None:
        """Show a finished (or loaded) table; the tree column and the plan frames follow."""
        self.result = result
        self._configs = {}
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
        self._status(f"Sensitivity: {cells} cells measured; click a cell to plan it")
        view = self.layers.view
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
        opened = self.current.opened
        if opened is None or self._job:
            return
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self._parent, "Open sensitivity result", "", JSON_FILTER)
        if not path:
            return
        try:
            result = load_result(path, opened.loaded.module)
        except StudioError as exc:
            self._errors(str(exc), "Could not open the sensitivity result")
            return
        self._module = opened.loaded.module
        self.set_result(result)
        self.show()

    def save_result(self, path: str | None = None) -> None:
        if self.result is None:
            return
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self._parent, "Save sensitivity result", "sensitivity.json",
                                                  JSON_FILTER)
        if not path:
            return
        from studio.core.base.atomic import write_text_atomic

        try:
            write_text_atomic(path, json.dumps(self.result.to_dict(), indent=1) + "\n")
            self._status(f"Saved the sensitivity table to {path}")
        except OSError as exc:
            self._errors(f"Could not write {path}: {exc.strerror or exc}.", "Could not save")

    def apply_cell(self, layer: str, kind: str, label: str) -> None:
        """Click on the heatmap: that layer's plan becomes that setting (one undoable edit)."""
        document = self.document
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
            self._status(f"Plan: {layer} → {label or 'float'} (Ctrl+Z undoes)")

    def _apply_fit(self, fitted: Any) -> None:
        document = self.document
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
        self._status(f"Fitted plan: predicted drop {format_drop(fitted.predicted_drop, metric, True)}")

    def _reveal(self, layers: list[str]) -> None:
        """Scroll the tree to the first planned layer, so the marks are in view."""
        tree, panel = self.current.opened.tree if self.current.opened else None, self.layers
        names = [name for name in layers if tree is not None and name in tree]
        if names:
            index = panel.proxy.mapFromSource(panel.model.index_of(tree[names[0]]))
            panel.view.scrollTo(index, panel.view.ScrollHint.PositionAtCenter)

    # --- plan, tree and compare view ----------------------------------------------------------
    def _plan_changed(self, *_: Any) -> None:
        choices = self._choices()  # once: marks and prediction read the same choices
        self._update_marks(choices[0])
        self._update_prediction(choices)

    def _choices(self) -> tuple[dict[str, set[str]], tuple[str, ...]]:
        opened = self.current.opened
        if self.result is None or opened is None or opened.loaded.module is not self._module:
            return {}, ()
        return plan_choices(self.document.plan, opened.loaded.module, self.result, self._configs)

    def _update_marks(self, chosen: dict[str, set[str]] | None = None) -> None:
        if chosen is None:
            chosen, _ = self._choices()
        self.panel.heatmap.set_chosen(chosen)
        if self.result is not None:
            metric = self.result.metric
            self._set_tree_marks(tree_marks(self.result, self.reference, chosen, lambda d: drop_colour(d, metric),
                                            lambda d, unit: format_drop(d, metric, unit)))

    def _set_tree_marks(self, marks: dict[str, Any]) -> None:
        self.layers.model.set_sensitivity(marks)

    def _update_prediction(self, choices: tuple[dict[str, set[str]], tuple[str, ...]] | None = None) -> None:
        if self.result is None:
            self.prediction = None
        else:
            prediction = predict(self.result, *(self._choices() if choices is None else choices))
            projection = self.projection
            if projection is not None and self.document.plan.rules:
                prediction = replace(prediction, bytes=projection.after.bytes, params=projection.after.params)
            self.prediction = prediction if prediction.layers else None

    def set_projection(self, projection: Any) -> None:
        """The plan's what-if projection changed: the prediction takes its size figures."""
        self.projection = projection
        self._update_prediction()

    def prediction_for_run(self) -> Prediction | None:
        """A run of the plan starts: its compare view shows this prediction next to the measurement."""
        self._update_prediction()
        return self.prediction

    def model_shown(self) -> None:
        opened = self.current.opened
        if opened is not None:
            from studio.core.pipelines.sensitivity.settings import sweepable_techniques  # torch is loaded now

            self.panel.set_techniques(sweepable_techniques())
        if opened is not None and opened.loaded.module is self._module and self.result is not None:
            self._update_marks()  # the same model inspected again: the tree was rebuilt
        elif self._module is not None:
            self.result, self.fitted, self._module, self._configs = None, None, None, {}
            self.model.clear()
            self._set_tree_marks({})
            self.layers.view.setColumnHidden(COL_SENSITIVITY, True)
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
