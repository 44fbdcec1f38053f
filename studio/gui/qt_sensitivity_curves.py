"""Per-layer curves: drop against size saved, one line per (layer, technique).

A layer whose curve stays flat while the saving grows is a good candidate; a steep one
is fragile. Curve items are reused between updates (`setData`), and the view redraws only
when the selection or the axis changes, or a heatmap flush (~15 Hz at most) brought cells of a
selected layer. Axis labels and the log mode are set only when they change: setting them makes
pyqtgraph regenerate the axes (ticks, labels, grid), the expensive part of a chart's repaint.
"""

from __future__ import annotations

from typing import Callable, Sequence

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWidget

from studio.core.pipelines.sensitivity import SensitivityCell
from studio.gui.qt_layer_bars import abbreviate
from studio.gui.qt_sensitivity_model import SensitivityTableModel, is_percent
from studio.gui.qt_theme import chart_colour, style_chart

PALETTE = ("#2f6fde", "#e8710a", "#188038", "#c5221f", "#9334e6", "#12a4af", "#b06000", "#5f6368")
SYMBOLS = {"prune": "o", "lowrank": "t", "quantize": "s"}
MAX_LAYERS = 8  # more lines than this is a tangle; the heatmap is the overview
BYTES_PER_WEIGHT = 4  # a float32 weight made zero: what a sparse or zipped file saves for it


def size_saved(cell: SensitivityCell) -> float:
    """Bytes saved; unstructured pruning keeps dense storage, so its zeros count as float32 weights
    (what a sparse format or zip saves), which puts every technique on one axis."""
    return float(cell.saved_bytes or BYTES_PER_WEIGHT * getattr(cell, "saved_nonzero", 0))


def params_saved(cell: SensitivityCell) -> float:
    return float(max(cell.saved_params, getattr(cell, "saved_nonzero", 0)))


# combo label, axis label, units, x of a cell, logarithmic. A log axis keeps the curves of small
# and large layers readable side by side (savings differ by orders of magnitude).
AXES: tuple[tuple[str, str, str, Callable[[SensitivityCell], float], bool], ...] = (
    ("size saved (log)", "size saved (zeros as float32)", "B", size_saved, True),
    ("size saved", "size saved (zeros as float32)", "B", size_saved, False),
    ("params saved", "params saved (non-zero)", "", params_saved, False),
    ("FLOPs saved", "FLOPs saved", "FLOP", lambda cell: float(cell.saved_flops), False),
)


class SensitivityCurves(pg.PlotWidget):
    def __init__(self, model: SensitivityTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent, background="w")
        self.setObjectName("sensitivityCurves")
        self.setMinimumSize(220, 160)
        self.model = model
        self.layers: list[str] = []
        self.axis = 0  # index into AXES
        self._items: list[pg.PlotDataItem] = []
        self._axes_state: tuple[str, str, str, bool] | None = None  # (left label, bottom label, units, log)
        self._shown: tuple[tuple[str, ...], list[tuple[str, str, list[float], list[float]]]] | None = None
        self.redraws = 0  # refreshes that changed the chart: counted by the stall tests
        item = self.getPlotItem()
        item.setTitle("Drop vs saving (selected layers)", color="#3c4043", size="9pt", bold=True)
        item.showGrid(x=True, y=True, alpha=0.12)
        item.layout.setContentsMargins(1, 1, 14, 1)  # room for the last x tick label (it was cut at the edge)
        for side in ("left", "bottom"):
            item.getAxis(side).setPen("#bdc1c6")
            item.getAxis(side).setTextPen("#5f6368")
        self.legend = pg.LegendItem(colCount=2, labelTextColor="#3c4043", labelTextSize="8pt", frame=False,
                                    horSpacing=4)
        item.layout.addItem(self.legend, 4, 1)  # below the x axis: the legend never hides a curve
        item.layout.setAlignment(self.legend, Qt.AlignmentFlag.AlignHCenter)
        self.hint = pg.TextItem("Select layers in the heatmap\nto compare their curves", color="#80868b",
                                anchor=(0.5, 0.5))
        item.addItem(self.hint, ignoreBounds=True)
        self.hint.setPos(0.5, 0.5)
        model.cellsChanged.connect(self._cells_changed)
        model.modelReset.connect(self.refresh)
        self.refresh()
        style_chart(self)  # the dark theme recolours what is drawn above in light colours

    def _cells_changed(self) -> None:
        """A heatmap flush: only cells of the selected layers change the curves."""
        if self.model.changed_layers & set(self.layers):
            self.refresh()

    def set_axis(self, index: int) -> None:
        self.axis = index
        self.refresh()

    def set_layers(self, layers: Sequence[str]) -> None:
        self.layers = list(layers)[:MAX_LAYERS]
        self.refresh()

    def series(self) -> list[tuple[str, str, list[float], list[float]]]:
        """(layer, technique, saving, drop) per curve, points sorted by saving. One curve per family
        of settings: unstructured and structured pruning, or rank and energy, are separate lines."""
        scale = 100.0 if is_percent(self.model.metric) else 1.0
        _, _, _, x_of, log = AXES[self.axis]
        settings = {s.label: s for s in self.model.settings}
        out = []
        for layer in self.layers:
            families: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for cell in self.model.row_cells(layer):
                if cell.ok and not (log and x_of(cell) <= 0):
                    setting = settings[cell.setting]
                    family = "" if setting.technique == "quantize" else setting.label.split()[0]
                    families.setdefault((setting.technique, family), []).append((x_of(cell), scale * cell.drop))
            for (technique, _family), points in families.items():
                points.sort()
                out.append((layer, technique, [p[0] for p in points], [p[1] for p in points]))
        return out

    def refresh(self) -> None:
        series = self.series()
        unit = " (pp)" if is_percent(self.model.metric) else ""
        _, label, units, _, log = AXES[self.axis]
        state = (f"{self.model.metric} drop{unit}", label, units, log)
        if state != self._axes_state:
            self._axes_state = state
            self.getPlotItem().setLabel("left", state[0], color=chart_colour("text"))
            self.getPlotItem().setLogMode(x=log, y=False)
            self.getPlotItem().setLabel("bottom", label, units=units or None, color=chart_colour("text"))
        elif (tuple(self.layers), series) == self._shown:
            return  # nothing the chart shows has changed (colours follow the selection's order)
        self._shown = (tuple(self.layers), series)
        self.redraws += 1
        while len(self._items) < len(series):
            curve = pg.PlotDataItem(symbolSize=6)
            self.getPlotItem().addItem(curve)
            self._items.append(curve)
        self.legend.clear()
        colours = {layer: PALETTE[i % len(PALETTE)] for i, layer in enumerate(self.layers)}
        named: set[str] = set()
        for curve, (layer, technique, xs, ys) in zip(self._items, series):
            colour = colours[layer]
            curve.setData(xs, ys, pen=pg.mkPen(colour, width=2), symbol=SYMBOLS.get(technique, "o"),
                          symbolBrush=colour, symbolPen=None)
            curve.show()
            if layer not in named:  # one entry per layer (its colour); the symbols name the techniques
                named.add(layer)
                self.legend.addItem(curve, abbreviate(layer, 24))
        for curve in self._items[len(series):]:
            curve.setData([], [])
            curve.hide()
        self.hint.setVisible(not series)
        if series:
            self.getPlotItem().enableAutoRange()
