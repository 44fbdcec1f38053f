"""The compare view's per-layer chart: horizontal bars of size before and after (bytes at real
bit widths, so quantization shows; parameters when a report has no bytes), readable at 100+
layers: the bars come from studio.core.report.rows.layer_bars (the layers that changed most, the
rest summed in one); zoom by scrolling, hover for details."""

from __future__ import annotations

import math
from html import escape

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF
from PySide6.QtGui import QFontMetrics
from PySide6.QtWidgets import QWidget

from studio.core.base.units import format_bytes, format_count
from studio.core.report.rows import LayerBar
from studio.gui.qt_theme import chart_colour, style_chart

BEFORE_COLOUR, AFTER_COLOUR = "#bdc1c6", "#2f6fde"


def abbreviate(name: str, limit: int = 28) -> str:
    """Shorten leading words first so indices and the leaf survive: 'e.l.3.attention.self.query'."""
    parts = name.split(".")
    for i in range(len(parts) - 1):
        if len(".".join(parts)) <= limit:
            break
        if not parts[i].isdigit():
            parts[i] = parts[i][0]
    short = ".".join(parts)
    if len(short) <= limit:
        return short
    tail = limit * 2 // 3
    return f"{short[:limit - tail - 1]}…{short[-tail:]}"


class LayerAxis(pg.AxisItem):
    """Layer names on the category axis: every k-th name when zoomed out, all when zoomed in."""

    LINE_PX = 15

    def __init__(self) -> None:
        super().__init__("left")
        self.names: list[str] = []

    def set_names(self, names: list[str]) -> None:
        self.names = list(names)
        metrics = QFontMetrics(self.font())
        widest = max((metrics.horizontalAdvance(abbreviate(n)) for n in self.names), default=40)
        self.setWidth(min(widest + 14, 240))
        self.picture = None
        self.update()

    def tickValues(self, minVal: float, maxVal: float, size: float) -> list[tuple[float, list[float]]]:
        minVal, maxVal = sorted((minVal, maxVal))  # the range comes reversed when the view is inverted
        lo, hi = max(0, math.ceil(minVal)), min(len(self.names) - 1, math.floor(maxVal))
        if hi < lo or size <= 0:
            return []
        step = max(1, math.ceil((hi - lo + 1) * self.LINE_PX / size))
        return [(float(step), [float(v) for v in range(lo + (-lo) % step, hi + 1, step)])]

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [abbreviate(self.names[int(round(v))]) if 0 <= round(v) < len(self.names) else "" for v in values]


class CountAxis(pg.AxisItem):
    """Counts as 1.2 k / 3.4 M or bytes as 12 kB / 3.4 MB, like the rest of the window."""

    formatter = staticmethod(format_count)

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        return [self.formatter(v * scale) if v >= 0 else "" for v in values]


class LayerBars(pg.PlotWidget):
    """Original (grey) and compressed (blue) size per changed layer."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="w", axisItems={"left": LayerAxis(), "bottom": CountAxis("bottom")})
        self.setObjectName("layerBars")
        self.setMinimumWidth(280)
        self.layers: list[LayerBar] = []
        self.key = "bytes"
        item = self.getPlotItem()
        item.setLabel("bottom", "size", color="#5f6368")
        item.showGrid(x=True, alpha=0.12)
        item.invertY(True)  # first layer on top, as in the tree
        item.setMouseEnabled(x=False, y=True)
        item.hideButtons()
        for side in ("left", "bottom"):
            item.getAxis(side).setPen("#bdc1c6")
            item.getAxis(side).setTextPen("#3c4043")
        empty = np.zeros(0)
        self.bars_before = pg.BarGraphItem(x0=0, y=empty, height=0.38, width=empty, brush=BEFORE_COLOUR, pen=None)
        self.bars_after = pg.BarGraphItem(x0=0, y=empty, height=0.38, width=empty, brush=AFTER_COLOUR, pen=None)
        item.addItem(self.bars_before)
        item.addItem(self.bars_after)
        self.scene().sigMouseMoved.connect(self._hover)
        style_chart(self)  # the dark theme recolours what is drawn above in light colours

    def set_bars(self, key: str, layers: list[LayerBar]) -> None:
        """`key`: "bytes" (real bit widths) or "params", as `layer_bars` chose."""
        has_bytes = key == "bytes"
        self.key, self.layers = key, layers
        axis_bottom = self.getPlotItem().getAxis("bottom")
        assert isinstance(axis_bottom, CountAxis)
        axis_bottom.formatter = format_bytes if has_bytes else format_count
        self.getPlotItem().setLabel("bottom", "size (real bit widths)" if has_bytes else "parameters",
                                    color=chart_colour("text"))
        axis_bottom.setStyle(showValues=bool(layers))  # no layer changed: no meaningless 0…1 scale
        y = np.arange(len(layers), dtype=float)
        before = np.array([layer.value(key, "before") for layer in layers])
        after = np.array([layer.value(key, "after") for layer in layers])
        self.bars_before.setOpts(x0=0, y=y - 0.2, height=0.38, width=before)
        self.bars_after.setOpts(x0=0, y=y + 0.2, height=0.38, width=after)
        axis = self.getPlotItem().getAxis("left")
        assert isinstance(axis, LayerAxis)
        axis.set_names([layer.name for layer in layers])
        item = self.getPlotItem()
        top = float(max(before.max(initial=0), after.max(initial=0))) or 1.0
        count = max(len(layers), 1)
        item.setLimits(xMin=0, xMax=top * 1.08, yMin=-0.7, yMax=count - 0.3, minYRange=min(count, 4))
        item.setXRange(0, top * 1.05, padding=0)
        item.setYRange(-0.6, count - 0.4, padding=0)

    def _hover(self, pos: QPointF) -> None:
        """Tooltip for the layer under the mouse: full name, technique and parameter change."""
        view = self.getPlotItem().getViewBox()
        if not view.sceneBoundingRect().contains(pos) and not self.getPlotItem().getAxis(
                "left").sceneBoundingRect().contains(pos):
            self.setToolTip("")
            return
        index = int(round(view.mapSceneToView(pos).y()))
        if not 0 <= index < len(self.layers):
            self.setToolTip("")
            return
        layer = self.layers[index]
        lines = "<br>".join(escape(d) for d in layer.details) + (" (skipped)" if layer.skipped else "")
        figures = []
        if layer.params_before is not None:
            figures.append(f"params {format_count(layer.params_before)} → {format_count(layer.params_after or 0)}")
        if layer.bytes_before is not None:
            figures.append(f"size {format_bytes(layer.bytes_before)} → {format_bytes(layer.bytes_after or 0)}")
        self.setToolTip(f"<b>{escape(layer.name)}</b><br>{lines}<br>" + "<br>".join(figures))
