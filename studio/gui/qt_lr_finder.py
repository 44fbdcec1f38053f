"""The learning-rate range test's window: the loss against a log-scaled learning rate as the
test runs, the suggested rate marked, and a button that puts it into the run settings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from studio.core.base.events import Finished, LrProbe, Progress, RunCancelled, StageStarted
from studio.gui.qt_run_settings import named
from studio.gui.qt_theme import style_chart

ACCENT, GREY, GREEN = "#2f6fde", "#9aa0a6", "#188038"
FLUSH_MS = 66


class LrFinderDialog(QDialog):
    """Fed core events by the run controller (GUI thread); emits the rate the user picks."""

    useLr = Signal(float)
    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("lrFinderDialog")
        self.setWindowTitle("Find a learning rate")
        self.resize(560, 420)
        self.suggested: float | None = None
        self._lrs: list[float] = []
        self._losses: list[float] = []
        self._smoothed: list[float] = []
        self._timer = QTimer(self, singleShot=True, interval=FLUSH_MS)
        self._timer.timeout.connect(self.flush)
        self.plot = named(pg.PlotWidget(background="w"), "lrFinderPlot")
        item = self.plot.getPlotItem()
        item.setLogMode(x=True, y=False)
        item.setLabel("bottom", "learning rate", color="#5f6368")
        item.setLabel("left", "training loss", color="#5f6368")
        item.showGrid(x=True, y=True, alpha=0.12)
        item.addLegend(offset=(-10, 10), labelTextColor="#3c4043")
        self.raw_curve = item.plot([], [], pen=pg.mkPen(GREY, width=1), name="loss")
        self.smooth_curve = item.plot([], [], pen=pg.mkPen(ACCENT, width=2), name="smoothed")
        self.marker = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(GREEN, width=1.5, style=Qt.PenStyle.DashLine),
                                      label="suggested", labelOpts={"position": 0.9, "color": GREEN})
        item.addItem(self.marker)
        self.marker.hide()
        style_chart(self.plot)  # the dark theme recolours what is drawn above in light colours
        self.progress = named(QProgressBar(), "lrFinderProgress")
        self.progress.setFormat("starting…")
        self.message = named(QLabel("Training a copy of the compressed model at growing learning rates…"),
                             "lrFinderMessage")
        self.message.setWordWrap(True)
        self.use_button = named(QPushButton("Use suggested rate"), "useLrButton")
        self.use_button.setEnabled(False)
        self.use_button.clicked.connect(self._use)
        self.cancel_button = named(QPushButton("Cancel"), "lrFinderCancel")
        self.cancel_button.clicked.connect(self._cancel_or_close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.use_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.progress)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self._running = False

    def start(self) -> None:
        self._lrs.clear()
        self._losses.clear()
        self._smoothed.clear()
        self.suggested, self._running = None, True
        self.raw_curve.setData([], [])
        self.smooth_curve.setData([], [])
        self.marker.hide()
        self.use_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, 0)
        self.progress.setFormat("compressing…")

    def handle_event(self, event: object) -> None:
        if isinstance(event, LrProbe):
            self._lrs.append(event.lr)
            self._losses.append(event.loss)
            self._smoothed.append(event.smoothed)
        elif isinstance(event, Progress) and event.message.startswith("lr "):
            self.progress.setRange(0, max(event.total, 1))
            self.progress.setValue(event.step)
            self.progress.setFormat(f"{event.step}/{event.total} · {event.message}")
        elif isinstance(event, StageStarted):
            self.progress.setFormat(event.name)
        elif isinstance(event, Finished):
            self.show_result(event.result)
            return
        elif isinstance(event, RunCancelled):
            self.stopped("Cancelled.")
            return
        if not self._timer.isActive():
            self._timer.start()

    def flush(self) -> None:
        self._timer.stop()
        finite = [(lr, a, b) for lr, a, b in zip(self._lrs, self._losses, self._smoothed)
                  if math.isfinite(a) and math.isfinite(b)]
        if finite:
            lrs, raw, smooth = (np.asarray(v, float) for v in zip(*finite))
            self.raw_curve.setData(lrs, raw)
            self.smooth_curve.setData(lrs, smooth)

    def show_result(self, result: Any) -> None:
        self.flush()
        self._running = False
        self.progress.setRange(0, 100)
        self.progress.setValue(100)
        self.progress.setFormat("done")
        self.suggested = result.suggested
        default = f"auto would use {result.default_lr:g} for a {result.family}"
        if result.suggested is None:
            self.message.setText(f"No suggestion: {result.reason}. {default.capitalize()}.")
        else:
            self.marker.setValue(math.log10(result.suggested))
            self.marker.label.setFormat(f"suggested {result.suggested:.2g}")
            self.marker.show()
            self.message.setText(f"Suggested learning rate {result.suggested:.2g}: {result.reason}; {default}.")
        self.use_button.setEnabled(result.suggested is not None)
        self.cancel_button.setText("Close")

    def stopped(self, text: str) -> None:
        self.flush()
        self._running = False
        self.progress.setRange(0, 100)
        self.progress.setFormat("stopped")
        self.message.setText(text)
        self.cancel_button.setText("Close")

    def curve_points(self) -> tuple[list[float], list[float]]:
        x, y = self.smooth_curve.xData, self.smooth_curve.yData
        return ([], []) if x is None else (list(x), list(y))

    def _use(self) -> None:
        if self.suggested is not None:
            self.useLr.emit(float(self.suggested))
            self.accept()

    def _cancel_or_close(self) -> None:
        if self._running:
            self.cancelRequested.emit()
            self.cancel_button.setEnabled(False)
        else:
            self.reject()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._running:
            self.cancelRequested.emit()
        super().closeEvent(event)
