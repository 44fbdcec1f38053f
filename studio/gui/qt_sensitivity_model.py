"""The heatmap's data: a `QAbstractTableModel` of layers × settings, coloured by metric drop.

Cells arrive one by one while a sweep runs; the model stores them at once and repaints at
most ~15 times a second (charts and tables update at 10-20 Hz), so a fast sweep never floods the GUI thread.
A flush announces only the rows that got cells (one dataChanged per run of adjacent rows: the view
repaints those rows, not the table), and a finished sweep's table of the same layout updates the streamed one in
place instead of resetting it (a reset re-lays out the headers, re-sorts and repaints everything). The
last columns are the quantization inverse view ("keep float": how much of the all-int8
drop keeping only this layer in float wins back) and the row's mean drop, its robustness.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QColor

from studio.core.pipelines.sensitivity.result import INVERSE_SETTING, SensitivityCell, SensitivityResult, SweepSetting
from studio.core.base.units import format_bytes, format_count, format_flops
from studio.gui.qt_layer_bars import abbreviate

SORT_ROLE = Qt.ItemDataRole.UserRole + 1   # numbers; pending and failed cells sort last
CELL_ROLE = Qt.ItemDataRole.UserRole + 2   # the SensitivityCell behind a heatmap cell (or None)
FLUSH_MS = 66                              # ~15 redraws a second while cells stream in
PERCENT_METRICS = frozenset({"accuracy", "top1_agreement", "agreement", "top1"})
KEEP_FLOAT, MEAN = "keep float", "mean drop"
_Index = QModelIndex | QPersistentModelIndex
_STOPS = ((0.0, (206, 234, 214)), (0.35, (254, 239, 195)), (0.7, (250, 190, 140)), (1.0, (217, 83, 79)))
_PENDING, _FAILED = QColor("#f8f9fa"), QColor("#eceff1")
_TEXT, _DIM = QColor("#202124"), QColor("#9aa0a6")
# plain ints: data() and multiData() run per painted cell, and a PySide enum read costs Python calls
_DISPLAY, _BACKGROUND, _FOREGROUND, _ALIGNMENT, _FONT, _CHECK, _DECORATION = (int(role) for role in (
    Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ForegroundRole,
    Qt.ItemDataRole.TextAlignmentRole, Qt.ItemDataRole.FontRole, Qt.ItemDataRole.CheckStateRole,
    Qt.ItemDataRole.DecorationRole))
_PAINTED_ROLES = frozenset((_DISPLAY, _BACKGROUND, _FOREGROUND, _ALIGNMENT))
DISPLAY, BACKGROUND, FOREGROUND = _DISPLAY, _BACKGROUND, _FOREGROUND  # keys of `painted` for the heatmap's delegate
_CENTER = int(Qt.AlignmentFlag.AlignCenter.value)


def is_percent(metric: str) -> bool:
    return metric in PERCENT_METRICS


def format_drop(drop: float, metric: str, unit: bool = False) -> str:
    """'1.4' (percentage points of accuracy) or '0.0312' (other metrics); '−' for a gain."""
    if drop is None or math.isnan(drop):
        return "n/a"
    if is_percent(metric):
        text = f"{100 * drop:.1f}"
        text = "0.0" if text == "-0.0" else text
        return text.replace("-", "−") + (" pp" if unit else "")
    return f"{drop:.3g}".replace("-", "−")


def drop_colour(drop: float, metric: str) -> QColor:
    """Green (no drop) → amber (1 pp) → red (≥ 10 pp), on a log scale that separates small drops."""
    scaled = 100 * drop  # a fraction: 0.01 is 1 pp of accuracy (other metrics read on the same scale)
    t = min(1.0, max(0.0, math.log10(1 + max(scaled, 0.0)) / math.log10(11)))
    for (t0, c0), (t1, c1) in zip(_STOPS, _STOPS[1:]):
        if t <= t1:
            f = (t - t0) / (t1 - t0) if t1 > t0 else 0.0
            return QColor(*(round(a + f * (b - a)) for a, b in zip(c0, c1)))
    return QColor(*_STOPS[-1][1])


def gain_colour(gain: float) -> QColor:
    """Keep-float column: white → blue as keeping the layer in float wins more back."""
    scaled = 100 * gain
    t = min(1.0, max(0.0, math.log10(1 + max(scaled, 0.0)) / math.log10(11)))
    return QColor(round(248 - t * (248 - 138)), round(249 - t * (249 - 180)), round(250 - t * (250 - 248)))


def saving_text(cell: SensitivityCell) -> str:
    nonzero = getattr(cell, "saved_nonzero", 0)
    zeros = f" ({format_count(nonzero)} made zero)" if nonzero > cell.saved_params else ""
    return (f"saves {format_count(cell.saved_params)} params{zeros} · {format_bytes(cell.saved_bytes)} · "
            f"{format_flops(cell.saved_flops)}")


def mean_drop(cells: Sequence[SensitivityCell]) -> float:
    drops = [c.drop for c in cells if c.ok]
    return sum(drops) / len(drops) if drops else math.nan


class SensitivityTableModel(QAbstractTableModel):
    """Rows: layers in model order. Columns: the sweep's settings, then keep-float and mean drop."""

    cellsChanged = Signal()  # after each throttled repaint (the curves and tree column follow it)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.metric, self.baseline, self.all_int8 = "accuracy", math.nan, math.nan
        self.settings: tuple[SweepSetting, ...] = ()
        self.layers: tuple[str, ...] = ()
        self.inverse_column = False
        self._cells: dict[tuple[str, str], SensitivityCell] = {}
        self._inverse: dict[str, SensitivityCell] = {}
        self._row: dict[str, int] = {}
        self._dirty = False
        self._dirty_rows: set[int] = set()
        self.changed_layers: frozenset[str] = frozenset()  # the rows of the last flush (None of them: a reset)
        self.resets = 0  # layout resets (plan/set_result/clear): counted by the stall tests
        self._timer = QTimer(self, singleShot=True, interval=FLUSH_MS)
        self._timer.timeout.connect(self.flush)

    # --- filling -------------------------------------------------------------------------
    def plan(self, settings: Sequence[SweepSetting], layers: Sequence[str], baseline: float, metric: str,
             inverse: bool | None = None) -> None:
        """Lay out an empty table (SweepPlanned); cells fill in as they arrive."""
        self.beginResetModel()
        self.settings, self.layers = tuple(settings), tuple(layers)
        self.baseline, self.metric, self.all_int8 = baseline, metric, math.nan
        self.inverse_column = any(s.technique == "quantize" for s in self.settings) if inverse is None else inverse
        self._row = {name: i for i, name in enumerate(self.layers)}
        self._cells.clear()
        self._inverse.clear()
        self._dirty = False
        self._dirty_rows.clear()
        self.resets += 1
        self.endResetModel()

    def add_cell(self, cell: SensitivityCell) -> None:
        """Store now, repaint with the next flush."""
        if cell.setting == INVERSE_SETTING:
            self._inverse[cell.layer] = cell
        else:
            self._cells[(cell.layer, cell.setting)] = cell
        self._dirty = True
        row = self._row.get(cell.layer)
        if row is not None:
            self._dirty_rows.add(row)
        if not self._timer.isActive():
            self._timer.start()

    def set_result(self, result: SensitivityResult) -> None:
        """The finished (or cached) table replaces whatever streamed in; when its layers, settings
        and columns are those already laid out (the sweep that just streamed), in place."""
        inverse = any(s.technique == "quantize" for s in result.settings) if not result.inverse else True
        same = (tuple(result.settings) == self.settings and tuple(result.layers) == self.layers
                and result.metric == self.metric and inverse == self.inverse_column and bool(self.layers))
        if same:
            self.baseline = result.baseline
            self._cells = {(c.layer, c.setting): c for c in result.cells}
            self._inverse = {c.layer: c for c in result.inverse}
            self._dirty_rows.update(range(len(self.layers)))
        else:
            self.plan(result.settings, result.layers, result.baseline, result.metric,
                      inverse=bool(result.inverse) or None)
            self._cells.update({(c.layer, c.setting): c for c in result.cells})
            self._inverse.update({c.layer: c for c in result.inverse})
        self.all_int8 = result.all_int8
        self._dirty = True
        self.flush()

    def clear(self) -> None:
        self._timer.stop()
        self.plan((), (), math.nan, self.metric)

    def flush(self) -> None:
        """One dataChanged per run of rows that got cells since the last flush (their mean and
        keep-float cells change with them): the view repaints those rows only."""
        self._timer.stop()
        if not self._dirty:
            return
        self._dirty = False
        rows, self._dirty_rows = sorted(r for r in self._dirty_rows if r < self.rowCount()), set()
        self.changed_layers = frozenset(self.layers[r] for r in rows)
        last = self.columnCount() - 1
        if last >= 0:
            for first, end in _runs(rows):  # each dataChanged costs the sort proxy a pass: adjacent rows share one
                self.dataChanged.emit(self.index(first, 0), self.index(end, last))
        self.cellsChanged.emit()

    # --- queries -------------------------------------------------------------------------
    @property
    def done(self) -> int:
        return len(self._cells) + len(self._inverse)

    def cell(self, layer: str, setting: str) -> SensitivityCell | None:
        return self._cells.get((layer, setting))

    def row_cells(self, layer: str) -> list[SensitivityCell]:
        return [c for s in self.settings if (c := self._cells.get((layer, s.label))) is not None]

    def keep_float_gain(self, layer: str) -> float:
        """Metric won back by keeping only `layer` in float when everything else is int8."""
        cell = self._inverse.get(layer)
        if cell is None or not cell.ok or math.isnan(self.all_int8) or math.isnan(self.baseline):
            return math.nan
        return (self.baseline - self.all_int8) - cell.drop

    def column_kind(self, column: int) -> str:
        """'setting', 'keep_float' or 'mean'."""
        if column < len(self.settings):
            return "setting"
        if self.inverse_column and column == len(self.settings):
            return "keep_float"
        return "mean"

    def setting_at(self, column: int) -> SweepSetting | None:
        return self.settings[column] if 0 <= column < len(self.settings) else None

    # --- Qt model ------------------------------------------------------------------------
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.layers)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() or not self.settings:
            return 0
        return len(self.settings) + int(self.inverse_column) + 1

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Vertical:
            if not 0 <= section < len(self.layers):
                return None
            if role == Qt.ItemDataRole.DisplayRole:
                return abbreviate(self.layers[section], 30)
            if role == Qt.ItemDataRole.ToolTipRole:
                return self.layers[section]
            return None
        if not 0 <= section < self.columnCount():
            return None
        kind = self.column_kind(section)
        if role == Qt.ItemDataRole.DisplayRole:  # two short lines keep the columns narrow: 'struct' / '50%'
            label = self.settings[section].label if kind == "setting" else KEEP_FLOAT if kind == "keep_float" else MEAN
            return label.replace(" ", "\n", 1)
        if role == Qt.ItemDataRole.ToolTipRole:
            unit = "percentage points of " if is_percent(self.metric) else ""
            if kind == "setting":
                return f"{self.settings[section].label}: drop in {unit}{self.metric} with only this change"
            if kind == "keep_float":
                return ("Quantization inverse view: everything int8 except this layer. The number is how much of the "
                        "all-int8 drop keeping this one layer in float wins back — high: keep it in float.")
            return "Mean drop over the row's settings: low is robust. Click to sort rows by robustness."
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.layers):
            return None
        if role in _PAINTED_ROLES:
            return self.painted(index.row(), index.column())[role]
        layer, kind = self.layers[index.row()], self.column_kind(index.column())
        if kind == "setting":
            return self._setting_data(layer, self.settings[index.column()], role)
        value = self.keep_float_gain(layer) if kind == "keep_float" else mean_drop(self.row_cells(layer))
        if role == SORT_ROLE:
            return math.inf if math.isnan(value) else value
        if role == Qt.ItemDataRole.ToolTipRole and not math.isnan(value):
            if kind == "mean":
                return f"<b>{layer}</b><br>mean drop {format_drop(value, self.metric, True)} over its settings"
            inverse = self._inverse[layer]
            return (f"<b>{layer}</b> in float, every other layer int8:<br>drop "
                    f"{format_drop(inverse.drop, self.metric, True)} (all int8: "
                    f"{format_drop(self.baseline - self.all_int8, self.metric, True)})<br>"
                    f"keeping it in float wins back {format_drop(value, self.metric, True)}"
                    "<br><i>Click to exclude it from quantization</i>")
        return None

    def multiData(self, index: _Index, roleDataSpan: Any) -> None:
        """A delegate's seven roles of one cell in one call, the cell looked up and coloured once
        (`BatchedRolesProxy` passes the batch through the heatmap's sort proxy)."""
        valid = index.isValid() and 0 <= index.row() < len(self.layers)
        painted = self.painted(index.row(), index.column()) if valid else {}
        for item in roleDataSpan:
            role = item.role()
            item.setData(painted[role] if role in painted else self.data(index, role) if valid else None)

    def painted(self, row: int, column: int) -> dict[int, Any]:
        """What a delegate paints of a cell (by role): text, heat colour, text colour, alignment, and
        no font, check box or icon."""
        layer, kind = self.layers[row], self.column_kind(column)
        if kind == "setting":
            cell = self._cells.get((layer, self.settings[column].label))
            if cell is None:
                text, background, foreground = None, _PENDING, None
            elif cell.ok:
                text, background = format_drop(cell.drop, self.metric), drop_colour(cell.drop, self.metric)
                foreground = _TEXT
            else:
                text, background, foreground = "n/a", _FAILED, _DIM
        else:
            value = self.keep_float_gain(layer) if kind == "keep_float" else mean_drop(self.row_cells(layer))
            foreground = _TEXT
            if math.isnan(value):
                text, background = "", _PENDING
            else:
                text = format_drop(value, self.metric)
                background = gain_colour(value) if kind == "keep_float" else drop_colour(value, self.metric)
        return {_DISPLAY: text, _BACKGROUND: background, _FOREGROUND: foreground,
                _ALIGNMENT: _CENTER if foreground is not None else None, _FONT: None, _CHECK: None, _DECORATION: None}

    def _setting_data(self, layer: str, setting: SweepSetting, role: int) -> Any:
        cell = self._cells.get((layer, setting.label))
        if role == CELL_ROLE:
            return cell
        if role == SORT_ROLE:
            return math.inf if cell is None or not cell.ok else cell.drop
        if role == Qt.ItemDataRole.ToolTipRole and cell is not None:
            if not cell.ok:
                return f"<b>{layer}</b> · {setting.label}<br>not applicable: {cell.error or 'no measurement'}"
            return (f"<b>{layer}</b> · {setting.label}<br>drop {format_drop(cell.drop, self.metric, True)} "
                    f"({self.metric} {_value(cell.value, self.metric)})<br>{saving_text(cell)}"
                    "<br><i>Click to set this layer's plan to this setting</i>")
        return None


def _runs(rows: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted row numbers as (first, last) runs of consecutive rows."""
    runs: list[tuple[int, int]] = []
    for row in rows:
        if runs and runs[-1][1] == row - 1:
            runs[-1] = (runs[-1][0], row)
        else:
            runs.append((row, row))
    return runs


def _value(value: float, metric: str) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{100 * value:.1f}%" if is_percent(metric) else f"{value:.4g}"
