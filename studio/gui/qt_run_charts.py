"""The run panel's three charts (loss, accuracy/fidelity, size): how each is drawn so a short or
empty run still reads well — steps never shown as "x0.001", an empty chart says so, the
validation loss on its own right-hand axis (distillation losses and cross-entropy differ by
orders of magnitude), reference labels kept inside the plot, and a narrow chart (three beside the
run settings at 1366 px) spaces its step labels and turns the best-step label along its line.

Cheap to redraw while points stream in: pyqtgraph regenerates and replays an axis (ticks, labels,
grid) whenever its range or style changes, which cost 15-60 ms of the GUI thread per live update.
So the step range grows in nice steps (1, 1.5, 2, 3, 5, 7.5 x 10^k) instead of following every new
step, a value range is sticky until the data leaves it and style changes only happen on a change
of state: a new point redraws the curve and replays the axes' recorded pictures, without generating
their ticks and labels again; the axes are cached as pixmaps (their grid lines span the plot). No
view autoranges: the caller sets every range from the data it already has, and each legend entry
is built with its curve and only shown or hidden afterwards."""

from __future__ import annotations

import math
from typing import Sequence

import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QFontMetricsF
from PySide6.QtWidgets import QGraphicsItem

from studio.gui.qt_theme import style_chart

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
NICE = (1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0)  # the step range grows through these x 10^k
SHRINK = 0.3  # a value range is recomputed when the data fills less than this share of it


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.5, 2, 3, 5, 7.5 x 10^k that is >= value (value > 0)."""
    if value <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(value))
    return next(m * scale for m in NICE if m * scale >= value * (1 - 1e-9))


def sticky_range(values: Sequence[float], current: tuple[float, float] | None,
                 from_zero: bool = False) -> tuple[float, float]:
    """`current` while it holds every value and the values fill at least SHRINK of it; else a new
    range with 10 % headroom rounded out to a tick-like step (never below zero for values >= 0).
    `from_zero` (losses): the range starts at zero for values >= 0, so a falling loss never moves it."""
    low, high = min(values), max(values)
    if from_zero and low >= 0:
        low = 0.0
    if current is not None and current[0] <= low and high <= current[1] \
            and high - low >= SHRINK * (current[1] - current[0]):
        return current
    span = high - low or abs(high) or 1.0
    step = nice_ceiling(span / 5)
    bottom = math.floor((low - 0.1 * span) / step) * step
    top = math.ceil((high + 0.1 * span) / step) * step
    return (max(bottom, 0.0) if low >= 0 else bottom), top


TWO_COLUMN_LEGEND_WIDTH = 240  # px: two labels side by side (measured: 185-191) and margins
TICK_GAP = "0"  # the least room between two step labels: a digit's width (a space, 3 px, read as crowded)
OVERHANG = 6  # px a step label may reach past the plot's ends ("0" at the left edge, ~4 px)
# a best-step label at mid-height beside its line, on the side of the view's centre (pyqtgraph switches
# the pair's entry as the line crosses it): across the line where it fits there, else along it (vertical).
# Mid-height is clear of the curves at the best step: a low loss, a high accuracy
ACROSS, ALONG = [(0, 0.5), (1, 0.5)], [(0.5, 0), (0.5, 1)]


class StepAxis(pg.AxisItem):
    """The step axis: major ticks at least a label and a gap apart, only they labelled. pyqtgraph
    keeps 2.25 intervals on any axis, and on a plot 80 px wide (the loss chart between its two value
    axes, three charts beside the settings at 1366 px) "50", "100" and "150" ran together; its own
    spacing stays where the labels fit. Asked only when the axis regenerates its ticks (a resize,
    a new range), never for a new point."""

    def __init__(self) -> None:
        super().__init__("bottom")
        self.setStyle(maxTextLevel=0)  # a minor level's labels, where pyqtgraph found room, came closer

    def boundingRect(self) -> QRectF:
        """OVERHANG px wider at both ends: labels are drawn only inside this rectangle, and "0" at
        the left end (~4 px past it, over the empty corner under the left axis) was never drawn
        (pyqtgraph's `hideOverlappingLabels` margin does not apply to an axis drawing grid lines)."""
        return super().boundingRect().adjusted(-OVERHANG, 0, OVERHANG, 0)

    def tickSpacing(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, float]]:  # noqa: N803
        levels = super().tickSpacing(minVal, maxVal, size)
        if self._tickSpacing is not None or not levels or size <= 0:
            return levels
        metrics = QFontMetricsF(self.style["tickFont"] or self.font())
        labels = self.tickStrings([minVal, maxVal], self.autoSIPrefixScale * self.scale, levels[0][0])
        room = max(metrics.horizontalAdvance(text) for text in labels) + metrics.horizontalAdvance(TICK_GAP)
        needed = room * abs(maxVal - minVal) / size  # in steps
        if levels[0][0] >= needed:
            return levels
        scale = 10.0 ** math.floor(math.log10(needed))
        major = next(m * scale for m in (1.0, 2.0, 5.0, 10.0) if m * scale >= needed)
        return [(major, 0), (major / 2, 0)]


class RunChart(pg.PlotWidget):
    """A titled chart with a legend below the x axis, an "empty" hint and an optional right axis."""

    def __init__(self, name: str, title: str, left: str, right: str = "") -> None:
        super().__init__(background="w", axisItems={"bottom": StepAxis()})
        self.setObjectName(name)
        self.setMinimumSize(160, 170)
        item = self.getPlotItem()
        item.setTitle(title, color="#3c4043", size="10pt", bold=True)
        item.layout.removeItem(item.titleLabel)  # over the axes' columns too (see the legend below)
        item.layout.addItem(item.titleLabel, 0, 0, 1, 3)
        item.setLabel("left", left, color="#5f6368")
        item.setLabel("bottom", "step", color="#5f6368")
        item.getAxis("bottom").enableAutoSIPrefix(False)  # steps are counts: never "step (x0.001)"
        item.showGrid(x=True, y=True, alpha=0.12)
        item.setDownsampling(auto=True, mode="peak")
        item.setClipToView(True)
        item.disableAutoRange()  # the ranges follow the data through fit_steps/fit_values/fit_right
        self.legend = pg.LegendItem(colCount=2, labelTextColor="#3c4043", labelTextSize="8pt", frame=False,
                                    horSpacing=2)
        # below the x axis (a legend there never hides a curve), across the axes' columns too: under
        # the plot's column alone a legend wider than the plot widened the chart past its widget
        item.layout.addItem(self.legend, 4, 0, 1, 3)
        item.layout.setAlignment(self.legend, Qt.AlignmentFlag.AlignHCenter)
        self.right_view: pg.ViewBox | None = None
        sides = ["left", "bottom"]
        if right:
            self.right_view = self._add_right_axis(right)
            sides.append("right")
        else:  # room for the last step label's overhang (a right axis leaves its own)
            left, top, _, bottom = item.layout.getContentsMargins()
            item.layout.setContentsMargins(left, top, OVERHANG, bottom)
        for side in sides:
            item.getAxis(side).setPen("#bdc1c6")
            item.getAxis(side).setTextPen("#5f6368")
            # the axis draws its grid lines across the plot: any change in the plot repainted them
            # (~130 translucent lines, 2-3 ms per axis); cached, they are a pixmap blit
            item.getAxis(side).setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
        self._empty: bool | None = None
        self._axes_empty: bool | None = None
        self._x_range: tuple[float, float] | None = None
        self._y_range: tuple[float, float] | None = None
        self._whole_steps = False
        self._legend: list[str] = []
        self._curves = 0
        self.legend.setColumnCount(1)
        self.legend.addItem(pg.PlotDataItem(), "x")  # the heights of one and of two rows, in this font
        one_row = self.legend.layout.preferredHeight()
        self.legend.addItem(pg.PlotDataItem(), "y")
        self._legend_rows = (one_row, self.legend.layout.preferredHeight() - one_row)  # first, each further
        self.legend.clear()
        self._right_range: tuple[float, float] | None = None
        self._line_labels: list[pg.InfLineLabel] = []
        item.vb.sigResized.connect(self._fit_line_labels)
        self.empty_hint = pg.TextItem(EMPTY_TEXT, color=GREY, anchor=(0.5, 0.5))
        self.empty_hint.setParentItem(item.vb)  # in view coordinates, not data: always centred
        item.vb.sigResized.connect(self._centre_hint)
        self.set_empty(True)
        style_chart(self)  # the dark theme recolours what is drawn above in light colours

    def _add_right_axis(self, label: str) -> pg.ViewBox:
        """A second ViewBox sharing x with the main one (pyqtgraph's MultiplePlotAxes recipe)."""
        item = self.getPlotItem()
        view = pg.ViewBox()
        view.disableAutoRange()
        item.showAxis("right")
        item.scene().addItem(view)
        item.getAxis("right").linkToView(view)
        item.getAxis("right").setLabel(label, color=ORANGE)
        item.getAxis("right").enableAutoSIPrefix(False)  # a loss of 0.02 reads as 0.02, not "x0.001"
        item.getAxis("right").setGrid(False)  # the left axis's grid lines; a second set would not line up
        view.setXLink(item)

        def follow() -> None:
            view.setGeometry(item.vb.sceneBoundingRect())
            view.linkedViewChanged(item.vb, view.XAxis)

        item.vb.sigResized.connect(follow)
        return view

    def add_curve(self, curve: pg.PlotDataItem, label: str, right: bool = False) -> None:
        """A curve of this chart and its legend entry, made now and hidden until the curve has data
        (building an entry cost ~3 ms of the GUI thread, in the turn of a run's first validation
        point); the legend keeps the height of all the entries, so one that appears or goes never
        resizes the plot (a resized plot repaints everything in it)."""
        (self.right_view if right and self.right_view is not None else self.getPlotItem()).addItem(curve)
        self.legend.addItem(curve, label)
        for part in self.legend.items[-1]:
            part.setVisible(False)
        self._curves += 1
        self._fit_legend()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        if event is not None and "_legend_rows" in self.__dict__:  # (pyqtgraph calls this while constructing)
            self._fit_legend(event.size().width())  # before the plot is laid out at the new width
        super().resizeEvent(event)

    def _fit_legend(self, width: int | None = None) -> None:
        """Two legend columns where the chart is wide enough, else one: a two-column legend wider
        than the chart made the plot wider than its widget, and the right of it was cut off (three
        charts beside the settings at 1366 px). The height is that of every entry, as always."""
        columns = 2 if (self.width() if width is None else width) >= TWO_COLUMN_LEGEND_WIDTH else 1
        if columns != self.legend.columnCount:
            self.legend.setColumnCount(columns)
            self.legend.layout.invalidate()  # else the grid keeps the emptied columns' widths,
            self.legend.layout.activate()    # and the plot its minimum width, until a later resize
            self.getPlotItem().layout.activate()
        first, further = self._legend_rows
        height = first + further * max(0, math.ceil(self._curves / columns) - 1)
        if self.legend.minimumHeight() != height or self.legend.maximumHeight() != height:
            self.legend.setFixedHeight(height)

    def set_legend(self, entries: Sequence[tuple[pg.PlotDataItem, str]]) -> None:
        """The legend entries (curve, label) shown, in their fixed places; only changes are applied."""
        labels = [label for _, label in entries]
        if labels == self._legend:
            return
        for sample, text in self.legend.items:
            shown = text.text in labels
            if sample.isVisible() != shown:
                sample.setVisible(shown)
                text.setVisible(shown)
        self._legend = labels

    def legend_labels(self) -> list[str]:
        """The labels the legend shows, in order."""
        return [text.text for sample, text in self.legend.items if sample.isVisible()]

    def keep_label_inside(self, line: pg.InfiniteLine) -> None:
        """Keep a vertical line's label inside the plot: beside the line on its roomier side (see
        ACROSS) where half the plot holds it, else along the line. Decided when the plot is resized,
        the line shown or the text changed (a new best step), not as points arrive: the label was
        cut at the plot's edge (a chart ~170 px wide shows a plot of 80-120 px; "best · step 129"
        is ~90 px)."""
        self._line_labels.append(line.label)
        line.visibleChanged.connect(self._fit_line_labels)
        line.label.textItem.document().contentsChanged.connect(self._fit_line_labels)

    def _fit_line_labels(self) -> None:
        view = self.getPlotItem().vb
        room = view.width() / 2 - 4
        for label in self._line_labels:
            if not label.isVisible():  # (a hidden label ignores a new angle; fitted when shown)
                continue
            width = label.textItem.boundingRect().width()
            along = room < width < view.height() - 8  # (a plot too low for it too: across, as wide)
            if along != (label.angle == 90):
                label.anchors = ALONG if along else ACROSS
                label.setAngle(90 if along else 0)
                label.updatePosition()

    def _centre_hint(self) -> None:
        rect = self.getPlotItem().vb.boundingRect()
        self.empty_hint.setPos(rect.center())

    def set_empty(self, empty: bool, axes: bool = True) -> None:
        """An empty chart shows the hint and no 0…1 tick values (they would mean nothing).
        Only a change of state touches the axes (a style change redraws them), and `axes=False`
        leaves them for a later `set_empty` (a run start restyles one chart per turn)."""
        if empty != self._empty:
            self._empty = empty
            self.empty_hint.setVisible(empty)
            self._centre_hint()
        if axes:
            self._style_axes(empty)

    @property
    def is_empty(self) -> bool:
        return bool(self._empty)

    def _style_axes(self, empty: bool) -> None:
        """Tick values off (empty) or on. An axis keeps the space its values took, so emptying a
        chart never resizes the plot (a resized plot repaints everything in it)."""
        if empty == self._axes_empty:
            return
        first, self._axes_empty = self._axes_empty is None, empty
        item = self.getPlotItem()
        for side in ("left", "bottom", "right"):
            if side in item.axes:
                axis = item.getAxis(side)
                fix = axis.setHeight if side == "bottom" else axis.setWidth
                if empty and not first:
                    fix(axis.height() if side == "bottom" else axis.width())
                axis.setStyle(showValues=not empty)
                if not empty:
                    fix(None)  # sized by its values again (the same size unless they got wider)

    def reset(self, axes: bool = True) -> None:
        """Empty for a new run, cheaply: the ranges stay until the first new points (an empty
        chart shows no values), which set them (`fit_steps`, `fit_values`, `fit_right`); the
        legend and axes keep their sizes. `axes=False`: the axes' restyle is left for a later
        `set_empty(True)`."""
        self.set_legend([])
        if self._whole_steps:
            self.getPlotItem().getAxis("bottom").setTickSpacing()
        self._x_range = self._y_range = self._right_range = None
        self._whole_steps = False
        self.set_empty(True, axes)

    def begin_points(self) -> None:
        """Before this chart draws points. Its ranges are set from the data by the caller, never by
        autoranging: an autorange walks every item's bounds and moved the range a second time in
        the turn of a run's first validation point."""
        self.set_empty(False)

    def fit_steps(self, steps: list[float]) -> None:
        """x from 0 (or the lowest step) to the next nice step count above the data, so the axis
        changes a few times per decade of steps, not at every update; a single step (or a handful
        at one step) gets a range of whole steps around it instead of ±0.5 around the point."""
        if not steps:
            return
        low, high = min(steps), max(steps)
        item, axis = self.getPlotItem(), self.getPlotItem().getAxis("bottom")
        whole = high - low < 1
        if whole:
            wanted = (max(-0.5, math.floor(low) - 1.0), math.ceil(high) + 1.0)
        else:
            start = min(low, 0.0)
            wanted = (start, start + nice_ceiling(high - start))
        if whole != self._whole_steps:
            axis.setTickSpacing(1, 1) if whole else axis.setTickSpacing()  # whole steps only / automatic
            self._whole_steps = whole
        if wanted != self._x_range:
            self._x_range = wanted
            item.setXRange(*wanted, padding=0 if whole else 0.02)

    def fit_values(self, values: Sequence[float], from_zero: bool = False) -> None:
        """The left axis's range for `values`, kept while they fit it (see `sticky_range`)."""
        if not values:
            return
        wanted = sticky_range(values, self._y_range, from_zero)
        if wanted != self._y_range:
            self._y_range = wanted
            self.getPlotItem().setYRange(*wanted, padding=0)

    def fit_right(self, values: Sequence[float], from_zero: bool = False) -> None:
        """The right axis's range for `values`, sticky like the left one's."""
        if not values or self.right_view is None:
            return
        wanted = sticky_range(values, self._right_range, from_zero)
        if wanted != self._right_range:
            self._right_range = wanted
            self.right_view.setYRange(*wanted, padding=0)


def reference_line(chart: RunChart, below: bool = False) -> pg.InfiniteLine:
    """A dashed, labelled horizontal line for the original model's value; hidden until known.
    `below`: the label sits under the line — for a line that tends to be the chart's top."""
    anchor = (0, 0) if below else (0, 1)
    line = pg.InfiniteLine(angle=0, movable=False, pen=pg.mkPen(GREY, width=1.5, style=Qt.PenStyle.DashLine),
                           label="original", labelOpts={"position": 0.12, "color": GREY, "anchors": [anchor, anchor]})
    chart.addItem(line)
    line.hide()
    line.visibleChanged.connect(line.label.valueChanged)  # see best_line
    return line


def best_line(chart: RunChart) -> pg.InfiniteLine:
    """A vertical line at the step whose weights are kept (the best validation score)."""
    line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(GREEN, width=1.5, style=Qt.PenStyle.DotLine),
                           label="best", labelOpts={"position": 0.5, "color": GREEN, "anchors": ACROSS})
    chart.addItem(line)
    line.hide()
    # pyqtgraph formats a hidden label only when it is shown through its own setVisible, which
    # showing the line bypasses: the first best step read "best" until a second one
    line.visibleChanged.connect(line.label.valueChanged)
    chart.keep_label_inside(line)  # (after: fitted to the text it is shown with)
    return line
