"""Run panel: the settings of a compression run and live charts of its events.

The panel never runs anything: the window's worker produces core events and the window
calls `handle_event` on the GUI thread. Points and log lines are buffered and drawn by a
~15 Hz timer, so a run with tens of thousands of steps costs a handful of repaints a second.
Each timer flush updates at most one chart (the others follow STAGGER_MS later), so one turn of
the event loop never repaints all three: a validation pass touches the loss and accuracy charts,
and together their repaint was the GUI thread's longest stall of a run.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFontDatabase, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (QFrame, QHBoxLayout, QPlainTextEdit, QScrollArea, QSplitter,
                               QVBoxLayout, QWidget)

from studio.core.base.events import (EvaluationProgress, Finished, LayerDone, Metric, Note, Progress, RunCancelled,
                                     StageStarted, Warning)
from studio.core.base.units import format_bytes, format_count, format_duration, format_percent
from studio.gui.qt_run_charts import AMBER, CURVES, GREY, RED, RIGHT_AXIS, RunChart, best_line, reference_line
from studio.gui.qt_run_settings import RunSettingsBox, named
from studio.gui.qt_run_widgets import DeferredProgressBar, finished_lines, report_parts
from studio.gui.qt_summary_strip import ElidedLabel
from studio.gui.qt_theme import set_sheet

if TYPE_CHECKING:
    from studio.core.techniques.base import LayerChange

STAGES = ("validate", "apply", "measure", "evaluate", "finetune", "latency")
FLUSH_MS = 66  # ~15 Hz: smooth to the eye, cheap for the GUI thread
STAGGER_MS = 15  # the next dirty chart's turn, after one chart was drawn
PLOTS = ("loss", "accuracy", "size")  # the order dirty charts are drawn in


class RunPanel(QWidget):
    """Settings, Start/Cancel, progress with ETA, loss/accuracy/size charts and a log."""

    startRequested = Signal()
    cancelRequested = Signal()
    findLrRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("runPanel")
        set_sheet(self,
            "QProgressBar#runProgress { max-height: 20px; min-height: 18px; text-align: center; color: #202124; }"
            "QLabel#runStage { color: #3c4043; font-weight: 600; }")
        self.max_flush_ms = 0.0  # the longest flush so far, for the responsiveness benchmark
        self._series: dict[str, tuple[list[float], list[float]]] = {}  # name -> (steps, values)
        self._dirty: set[str] = set()
        self._log_lines: list[tuple[str, str]] = []
        self._progress: tuple[str, int, int] | None = None
        self._progress_eta = True
        self._stage, self._stage_t0, self._run_t0, self._running = "", 0.0, 0.0, False
        self._original_bytes: int | None = None
        self._steps_total = 0  # fine-tuning's planned steps, once known: the step axes' extent
        self._size_factor, self._size_unit = 1e-6, "MB"
        self._timer = QTimer(self, singleShot=True, interval=FLUSH_MS)
        self._timer.timeout.connect(lambda: self.flush(charts=1))
        self._restyle: list[RunChart] = []  # charts whose axes a reset has yet to empty
        self._restyle_timer = QTimer(self, singleShot=True, interval=STAGGER_MS)
        self._restyle_timer.timeout.connect(self._restyle_next)

        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(10)
        self.settings_box = RunSettingsBox()
        self.settings_box.startRequested.connect(self.startRequested)
        self.settings_box.cancelRequested.connect(self.cancelRequested)
        self.settings_box.findLrRequested.connect(self.findLrRequested)
        box = self.settings_box  # the controls, reachable from the panel for tests and automation
        self.data_combo, self.epochs, self.distill = box.data_combo, box.epochs, box.distill
        self.lr, self.temperature, self.alpha = box.lr, box.temperature, box.alpha
        self.run_button, self.cancel_button = box.run_button, box.cancel_button
        self.settings_dict, self.load_settings = box.settings_dict, box.load_settings
        scroll = QScrollArea()  # on a short screen the settings scroll instead of forcing the dock taller
        scroll.setObjectName("runSettingsScroll")
        scroll.setWidget(box)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedWidth(box.width() + scroll.verticalScrollBar().sizeHint().width())
        scroll.setMinimumHeight(120)
        layout.addWidget(scroll)
        right = QVBoxLayout()
        right.setSpacing(6)
        row = QHBoxLayout()
        self.stage_label = named(ElidedLabel("Ready: choose the data and press Start run.",
                                              Qt.TextElideMode.ElideRight), "runStage")
        row.addWidget(self.stage_label, 1)
        self.progress = named(DeferredProgressBar(), "runProgress")
        self.progress.setFormat("idle")
        self.progress.setMinimumWidth(200)
        row.addWidget(self.progress, 1)
        right.addLayout(row)
        self.loss_plot = RunChart("lossPlot", "Loss", "train loss", right="val loss")
        self.accuracy_plot = RunChart("accuracyPlot", "Accuracy / fidelity", "%")
        self.size_plot = RunChart("sizePlot", "Model size", "size (MB)")
        self._plots = {"loss": self.loss_plot, "accuracy": self.accuracy_plot, "size": self.size_plot}
        self._curves: dict[str, pg.PlotDataItem] = {}
        for name, (plot, label, colour, _factor, symbol) in CURVES.items():
            pen = pg.mkPen(colour, width=1.6 if symbol is None else 2)
            curve = pg.PlotDataItem(pen=pen, name=label, symbol=symbol, symbolSize=6, symbolPen=pen,
                                    symbolBrush=colour)
            curve.setDownsampling(auto=True, method="peak")
            curve.setClipToView(True)
            self._plots[plot].add_curve(curve, label, right=name in RIGHT_AXIS)
            self._curves[name] = curve
        self.original_line = reference_line(self.size_plot, below=True)  # the original is the chart's top
        self.original_accuracy = reference_line(self.accuracy_plot, below=True)  # the original tends to be the top
        self.best_lines = [best_line(plot) for plot in (self.loss_plot, self.accuracy_plot)]
        self.best_step: int | None = None
        charts = QWidget()
        charts_layout = QHBoxLayout(charts)
        charts_layout.setContentsMargins(0, 0, 0, 0)
        charts_layout.setSpacing(6)
        for plot in self._plots.values():
            charts_layout.addWidget(plot, 1)
        self.log = named(QPlainTextEdit(), "runLog")
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(10000)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log.setPlaceholderText("Stages, layer changes and warnings of the run appear here.")
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(charts)
        splitter.addWidget(self.log)
        splitter.setStretchFactor(0, 4)
        splitter.setStretchFactor(1, 1)
        self.log.setMinimumHeight(54)  # three lines; drag the handle for more
        splitter.setSizes([560, 110])
        splitter.setChildrenCollapsible(False)
        right.addWidget(splitter, 1)
        layout.addLayout(right, 1)

    # --- state -----------------------------------------------------------------------------
    def set_running(self, running: bool) -> None:
        self._running = running
        self.settings_box.set_running(running)

    def reset(self) -> None:
        """Empty charts and log for a new run; the curve objects stay."""
        self._timer.stop()
        for buffer in (self._series, self._dirty, self._log_lines):
            buffer.clear()
        for curve in self._curves.values():
            curve.setData([], [])
        for plot in self._plots.values():  # their axes one chart per turn, each drawn in its turn:
            plot.reset(axes=False)           # restyling and drawing all three at once was the run
            plot.setUpdatesEnabled(False)    # start's longest stall
        self._restyle = list(self._plots.values())
        self._restyle_timer.start(STAGGER_MS)
        self.original_line.hide()
        self.original_accuracy.hide()
        for line in self.best_lines:
            line.hide()
        self.best_step = None
        self.log.clear()
        self._original_bytes, self._progress, self._stage, self._run_t0 = None, None, "", 0.0
        self._steps_total = 0
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("starting…")
        self.stage_label.setText("Starting…")

    def _restyle_next(self) -> None:
        """One chart's share of a reset: its axes emptied, the chart drawn again."""
        if self._restyle:
            plot = self._restyle.pop(0)
            plot.set_empty(plot.is_empty)  # still empty unless points came first
            plot.setUpdatesEnabled(True)
        if self._restyle:
            self._restyle_timer.start(STAGGER_MS)

    def failed(self, message: str) -> None:
        """A run that stopped on an error says so here too, not only in a dialog."""
        self._log(f"failed: {message}", RED)
        self.flush()
        self.progress.setRange(0, 100)
        self.progress.setFormat(f"failed · {self._stage}" if self._stage else "failed")
        first = message if len(message) <= 120 else message[:119] + "…"
        self.stage_label.setText(f"Failed: {first} The original model is unchanged.")
        self.stage_label.setToolTip(message)
        self.set_running(False)

    # --- events ----------------------------------------------------------------------------
    def handle_event(self, event: object) -> None:
        """Any core event; cheap here, drawn by the next timer flush (Finished/RunCancelled at once)."""
        now = time.perf_counter()
        if not self._run_t0:
            self._run_t0 = now
        if isinstance(event, Metric):
            self._add_point(event.name, event.step, event.value)
        elif isinstance(event, Progress):
            evaluating = isinstance(event, EvaluationProgress)  # a pass over the data inside a stage: no ETA
            self._progress = (event.message if evaluating else self._stage, event.step, event.total)
            self._progress_eta = not evaluating
            if self._stage == "finetune" and not evaluating and event.total != self._steps_total:
                self._steps_total = event.total  # the step axis spans the planned steps from the start
        elif isinstance(event, StageStarted):
            self._stage, self._stage_t0, self._progress = event.name, now, None
            number = f"{STAGES.index(event.name) + 1}/{len(STAGES)} " if event.name in STAGES else ""
            self.stage_label.setText(f"Stage {number}· {event.name}")
            self.stage_label.setToolTip(event.detail)
            self._log(f"{event.name}: {event.detail}" if event.detail else event.name, "#174ea6")
        elif isinstance(event, LayerDone):
            self._log_change(event.change)
        elif isinstance(event, Warning):
            self._log(f"warning: {event.message}", AMBER)
        elif isinstance(event, Note):
            self._log(event.message, "#5f6368")
        elif isinstance(event, Finished):
            self._finished(report_parts(getattr(event.result, "report", None)))
            return
        elif isinstance(event, RunCancelled):  # the pipeline's own words: what it had done when it stopped
            self._log(event.detail, RED)
            self.flush()
            self.progress.setRange(0, 100)
            self.progress.setFormat(f"cancelled · {self._stage or event.stage}")
            self.stage_label.setText(event.detail[:1].upper() + event.detail[1:])
            self.stage_label.setToolTip(event.detail)
            self.set_running(False)
            return
        if not self._timer.isActive():
            self._timer.start(FLUSH_MS)

    def _add_point(self, name: str, step: float, value: float) -> None:
        if name.startswith("best/"):  # the step whose weights fine-tuning keeps so far
            self.best_step = int(step)
            for line in self.best_lines:
                line.setValue(step)
                line.label.setFormat(f"best · step {int(step)}")
                line.show()
            return
        if name == "original/accuracy":  # a reference line, not a curve: the accuracy to hold
            self.original_accuracy.label.setFormat(f"original {format_percent(value)}")
            self.original_accuracy.setValue(100 * value)  # after the format: the label redraws on a new value
            self.original_accuracy.show()
            self._dirty.add(name)  # the accuracy range keeps the line in view
            return
        if name == "size/original_bytes":
            self._original_bytes = value
            self._size_unit, self._size_factor = next(
                (u, 1 / f) for u, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3), ("B", 1.0)) if value >= f or f == 1)
        xs, ys = self._series.setdefault(name, ([], []))
        xs.append(step)
        ys.append(value)
        self._dirty.add(name)

    def _log_change(self, change: LayerChange) -> None:
        name, technique = change.name, change.technique
        if change.skipped:
            self._log(f"  skipped {name} ({technique}): {change.detail}", GREY)
            return
        before, after = change.params_before, change.params_after
        sizes = f" ({format_count(before)} → {format_count(after)} params)" if before != after else ""
        self._log(f"  {technique:<8} {name}: {change.detail}{sizes}", "")

    def _log(self, text: str, colour: str) -> None:
        stamp = time.perf_counter() - self._run_t0 if self._run_t0 else 0.0
        self._log_lines.append((f"{int(stamp // 60):02d}:{stamp % 60:04.1f}  {text}", colour))

    def _finished(self, report: dict[str, Any]) -> None:
        after = report.get("after") or {}
        last = max((xs[-1] for xs, _ in self._series.values() if xs), default=0)
        size = self._series.get("size/bytes")
        if after.get("bytes") is not None and size and last > size[0][-1]:
            self._add_point("size/bytes", last, after["bytes"])  # the line spans the whole run
        elapsed = time.perf_counter() - self._run_t0 if self._run_t0 else 0.0
        for text, colour in finished_lines(report, elapsed):
            self._log(text, colour)
        self._progress = None
        self.flush(charts=0)  # the log and the progress now; the charts' last points one per turn
        self.progress.setRange(0, 100)
        self.progress.setValue(100)
        self.progress.setFormat(f"done · {format_duration(elapsed)}")
        self.stage_label.setText("Finished: compare the models in the Compare tab")
        self.set_running(False)

    # --- drawing ---------------------------------------------------------------------------
    def flush(self, charts: int | None = None) -> None:
        """Push buffered points, progress and log lines to the widgets (GUI thread, ≤ 15 Hz).
        `charts`: how many dirty charts to draw now (None: all); the rest get the next turn."""
        start = time.perf_counter()
        self._timer.stop()
        while self._restyle:  # a reset's charts first: points never come before their reset
            self._restyle_next()
        dirty = [plot for plot in PLOTS if any(_plot_of(name) == plot for name in self._dirty)]
        now = set(dirty if charts is None else dirty[:charts])
        names = {name for name in self._dirty if _plot_of(name) in now}
        later = {name for name in self._dirty if _plot_of(name) in set(dirty) - now}
        self._dirty = names
        for name in self._dirty:
            if name in self._curves:
                plot = self._plots[CURVES[name][0]]
                plot.begin_points()
                (xs, ys), curve = self._series[name], self._curves[name]
                factor = self._size_factor if name.startswith("size/") else CURVES[name][3]
                curve.setData(np.asarray(xs, float), np.asarray(ys, float) * factor)
                plot.set_legend([(self._curves[other], spec[1]) for other, spec in CURVES.items()  # fixed order,
                                 if spec[0] == CURVES[name][0] and self._series.get(other)])  # curves with data
        for plot in {self._plots[CURVES[n][0]] for n in self._dirty if n in CURVES}:
            steps = [x for n, spec in CURVES.items() if self._plots[spec[0]] is plot
                     for x in self._series.get(n, ([], []))[0]]  # with the planned total: a step axis
            plot.fit_steps(steps + [self._steps_total] if steps and self._steps_total else steps)  # set once
        if "train/loss" in self._dirty:  # sticky: a falling loss does not redraw the axis at every point
            self.loss_plot.fit_values(self._series["train/loss"][1], from_zero=True)
        if self._dirty & {"size/bytes", "size/original_bytes"}:
            self._update_size_axis()
        if "val/loss" in self._dirty:  # every range is set from the data: no autorange (see begin_points)
            self.loss_plot.fit_right(self._series["val/loss"][1], from_zero=True)
        if self._dirty & {"val/accuracy", "val/agreement", "original/accuracy"}:
            values = [100 * v for n in ("val/accuracy", "val/agreement") for v in self._series.get(n, ([], []))[1]]
            if values and self.original_accuracy.isVisible():
                values.append(self.original_accuracy.value())  # the original's line stays in view
            self.accuracy_plot.fit_values(values)
        self._dirty = later
        if later:
            self._timer.start(STAGGER_MS)
        if self._progress is not None:
            stage, step, total = self._progress
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(min(step, total))
            elapsed = time.perf_counter() - self._stage_t0
            eta = f" · ETA {format_duration(elapsed / step * (total - step))}" if 0 < step < total and self._progress_eta else ""
            self.progress.setFormat(f"{stage} · {step}/{total}{eta}")
        elif self._running and self._stage and self.progress.format() != self._stage:
            self.progress.setRange(0, 0)  # busy: this stage reports no steps
            self.progress.setFormat(self._stage)
        self._write_log()
        self.max_flush_ms = max(self.max_flush_ms, 1000 * (time.perf_counter() - start))

    def _update_size_axis(self) -> None:
        item = self.size_plot.getPlotItem()
        if item.getAxis("left").labelText != f"size ({self._size_unit})":  # a new label redraws the axis
            item.setLabel("left", f"size ({self._size_unit})")
        top = max([self._original_bytes or 0.0, *self._series.get("size/bytes", ([], []))[1]])
        if self._original_bytes is not None:
            self.original_line.setValue(self._original_bytes * self._size_factor)
            self.original_line.label.setFormat(f"original {format_bytes(self._original_bytes)}")
            self.original_line.show()
        if top > 0:
            item.setYRange(0, top * self._size_factor * 1.2, padding=0)  # from zero: heights compare honestly

    def _write_log(self) -> None:
        if not self._log_lines:
            return
        bar = self.log.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        cursor = QTextCursor(self.log.document())
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.beginEditBlock()
        for text, colour in self._log_lines:
            if not self.log.document().isEmpty():
                cursor.insertBlock()
            fmt = QTextCharFormat()
            fmt.setForeground(QColor(colour or "#202124"))
            cursor.insertText(text, fmt)
        cursor.endEditBlock()
        self._log_lines.clear()
        if at_end:
            bar.setValue(bar.maximum())

    def curve_points(self, name: str) -> tuple[list[float], list[float]]:
        """The x and y values a chart currently holds for a metric (accuracy in %, size in the axis unit)."""
        curve = self._curves.get(name)
        if curve is None:
            xs, ys = self._series.get(name, ([], []))
            return list(xs), list(ys)
        x, y = curve.xData, curve.yData
        return ([], []) if x is None else (list(x), list(y))


def _plot_of(name: str) -> str | None:
    """The chart a buffered metric is drawn on (None: not drawn)."""
    if name in CURVES:
        return CURVES[name][0]
    return "size" if name.startswith("size/") else "accuracy" if name == "original/accuracy" else None


__all__ = ["DeferredProgressBar", "RunPanel"]
