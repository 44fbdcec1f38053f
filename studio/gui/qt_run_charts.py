"""The run panel's three charts (loss, accuracy/fidelity, size): how each is drawn so a short or
empty run still reads well — steps never shown as "x0.001", an empty chart says so, the
validation loss on its own right-hand axis (distillation losses and cross-entropy differ by
orders of magnitude), reference labels kept inside the plot."""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6.QtCore import Qt

ACCENT, ORANGE, GREEN, GREY, RED, AMBER = "#2f6fde", "#e8710a", "#188038", "#80868b", "#c5221f", "#9a6700"
# metric name -> (plot, legend label, colour, y factor, symbol); accuracy-like values are shown in percent
CURVES: dict[str, tuple[str, str, str, float, str | None]] = {
    "train/loss": ("loss", "train", ACCENT, 1.0, None),
    "val/loss": ("loss", "val (right axis)", ORANGE, 1.0, "o"),
    "val/accuracy": ("accuracy", "accuracy", ACCENT, 100.0, "o"),
    "val/agreement": ("accuracy", "agreement", GREEN, 100.0, "o"),
    "size/bytes": ("size", "compressed", ACCENT, 1e-6, "o"),
}
RIGHT_AXIS = {"val/loss"}  # curves drawn against the chart's right-hand axis
EMPTY_TEXT = "no points yet"


class RunChart(pg.PlotWidget):
    """A titled chart with a legend below the x axis, an "empty" hint and an optional right axis."""

    def __init__(self, name: str, title: str, left: str, right: str = "") -> None:
        super().__init__(background="w")
        self.setObjectName(name)
        self.setMinimumSize(160, 170)
        item = self.getPlotItem()
        item.setTitle(title, color="#3c4043", size="10pt", bold=True)
        item.setLabel("left", left, color="#5f6368")
        item.setLabel("bottom", "step", color="#5f6368")
        item.getAxis("bottom").enableAutoSIPrefix(False)  # steps are counts: never "step (x0.001)"
        item.showGrid(x=True, y=True, alpha=0.12)
        item.setDownsampling(auto=True, mode="peak")
        item.setClipToView(True)
        self.legend = pg.LegendItem(colCount=2, labelTextColor="#3c4043", labelTextSize="8pt", frame=False,
                                    horSpacing=2)
        item.layout.addItem(self.legend, 4, 1)  # below the x axis: a legend there never hides a curve
        item.layout.setAlignment(self.legend, Qt.AlignmentFlag.AlignHCenter)
        self.right_view: pg.ViewBox | None = None
        sides = ["left", "bottom"]
        if right:
            self.right_view = self._add_right_axis(right)
            sides.append("right")
        for side in sides:
            item.getAxis(side).setPen("#bdc1c6")
            item.getAxis(side).setTextPen("#5f6368")
        self.empty_hint = pg.TextItem(EMPTY_TEXT, color=GREY, anchor=(0.5, 0.5))
        self.empty_hint.setParentItem(item.vb)  # in view coordinates, not data: always centred
        item.vb.sigResized.connect(self._centre_hint)
        self.set_empty(True)

    def _add_right_axis(self, label: str) -> pg.ViewBox:
        """A second ViewBox sharing x with the main one (pyqtgraph's MultiplePlotAxes recipe)."""
        item = self.getPlotItem()
        view = pg.ViewBox()
        item.showAxis("right")
        item.scene().addItem(view)
        item.getAxis("right").linkToView(view)
        item.getAxis("right").setLabel(label, color=ORANGE)
        item.getAxis("right").enableAutoSIPrefix(False)  # a loss of 0.02 reads as 0.02, not "x0.001"
        view.setXLink(item)

        def follow() -> None:
            view.setGeometry(item.vb.sceneBoundingRect())
            view.linkedViewChanged(item.vb, view.XAxis)

        item.vb.sigResized.connect(follow)
        return view

    def add_curve(self, curve: pg.PlotDataItem, right: bool = False) -> None:
        (self.right_view if right and self.right_view is not None else self.getPlotItem()).addItem(curve)

    def _centre_hint(self) -> None:
        rect = self.getPlotItem().vb.boundingRect()
        self.empty_hint.setPos(rect.center())

    def set_empty(self, empty: bool) -> None:
        """An empty chart shows the hint and no 0…1 tick values (they would mean nothing)."""
        item = self.getPlotItem()
        self.empty_hint.setVisible(empty)
        for side in ("left", "bottom", "right"):
            if side in item.axes:
                item.getAxis(side).setStyle(showValues=not empty)
        self._centre_hint()

    def reset(self) -> None:
        self.legend.clear()
        self.getPlotItem().enableAutoRange()
        self.getPlotItem().getAxis("bottom").setTickSpacing()
        if self.right_view is not None:
            self.right_view.enableAutoRange()
        self.set_empty(True)

    def fit_steps(self, steps: list[float]) -> None:
        """x from the data, but a single step (or a handful at one step) gets a range of whole steps
        around it, starting at 0 at the lowest, instead of ±0.5 around the point."""
        if not steps:
            return
        low, high = min(steps), max(steps)
        item, axis = self.getPlotItem(), self.getPlotItem().getAxis("bottom")
        if high - low < 1:
            axis.setTickSpacing(1, 1)  # whole steps only
            item.setXRange(max(-0.5, math.floor(low) - 1), math.ceil(high) + 1, padding=0)
        else:
            axis.setTickSpacing()  # back to automatic ticks
            item.enableAutoRange(axis=pg.ViewBox.XAxis)


def reference_line(chart: RunChart, below: bool = False) -> pg.InfiniteLine:
    """A dashed, labelled horizontal line for the original model's value; hidden until known.
    `below`: the label sits under the line — for a line that tends to be the chart's top."""
    anchor = (0, 0) if below else (0, 1)
    line = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen(GREY, width=1.5, style=Qt.PenStyle.DashLine),
                           label="original", labelOpts={"position": 0.12, "color": GREY, "anchors": [anchor, anchor]})
    chart.addItem(line)
    line.hide()
    return line


def best_line(chart: RunChart) -> pg.InfiniteLine:
    """A vertical line at the step whose weights are kept (the best validation score)."""
    line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(GREEN, width=1.5, style=Qt.PenStyle.DotLine),
                           label="best", labelOpts={"position": 0.92, "color": GREEN, "anchors": [(1, 0), (1, 0)]})
    chart.addItem(line)
    line.hide()
    return line
