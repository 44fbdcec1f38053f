"""The heatmap view: layers × settings as coloured cells with the drop written in them.

A table reads better than an image here: layer names and setting labels stay legible,
hover and click land on exactly one cell, and sorting rows by robustness is a header
click. Clicking a setting cell asks for that layer's plan to become that setting; the
cells of the current plan get a dark frame so the plan is visible in the map.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QPointF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QStaticText, QTransform
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QHBoxLayout, QHeaderView, QLabel, QStackedWidget, QStyle,
                               QStyledItemDelegate, QStyleOptionViewItem, QTableView, QVBoxLayout, QWidget)

from studio.gui.qt_proxy import BatchedRolesProxy
from studio.gui.qt_sensitivity_model import (BACKGROUND, DISPLAY, FOREGROUND, SORT_ROLE, SensitivityTableModel,
                                            drop_colour, gain_colour)
from studio.gui.qt_theme import set_sheet

_SELECTED = QStyle.StateFlag.State_Selected  # looked up once: paint runs per cell
ROW_ORDERS = ("model order", "most robust first", "most fragile first")


class _HeatDelegate(QStyledItemDelegate):
    """Paints a cell as its heat colour with the drop centred, then a frame when it is selected
    (thin, accent: the heat colour stays readable) or the layer's current plan (dark).

    Qt's item painting lays every cell's text out again on every paint, most of a heatmap
    repaint; a cell's few characters here are laid out once per string (`QStaticText`). Text
    wider than its cell goes the styled way, which elides it."""

    def __init__(self, heatmap: SensitivityHeatmap) -> None:
        super().__init__(heatmap.view)
        self._heatmap = heatmap
        self._pen = QPen(QColor("#202124"), 2)
        self._selection = QPen(QColor("#2f6fde"), 1)
        self._texts: dict[tuple[str, str], QStaticText] = {}

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        heatmap = self._heatmap
        source = heatmap.proxy.mapToSource(index)
        row, column = source.row(), source.column()
        model = heatmap.model
        if not 0 <= row < len(model.layers):
            return
        cell = model.painted(row, column)
        rect = option.rect
        painter.save()
        painter.fillRect(rect, cell[BACKGROUND])
        text = cell[DISPLAY]
        if text:
            font = option.font
            key = (text, font.key())
            static = self._texts.get(key)
            if static is None:
                static = self._texts[key] = QStaticText(text)
                static.setTextFormat(Qt.TextFormat.PlainText)
                static.prepare(QTransform(), font)
            size = static.size()
            if size.width() > rect.width() - 4:
                plain = QStyleOptionViewItem(option)
                plain.state &= ~_SELECTED
                plain.backgroundBrush = QBrush(cell[BACKGROUND])
                super().paint(painter, plain, index)
            else:
                painter.setFont(font)
                painter.setPen(cell[FOREGROUND])
                painter.drawStaticText(QPointF(rect.x() + (rect.width() - size.width()) / 2,
                                               rect.y() + (rect.height() - size.height()) / 2), static)
        if option.state & _SELECTED:
            painter.setPen(self._selection)
            painter.drawRect(rect.adjusted(0, 0, -1, -1))
        chosen = heatmap.chosen
        if chosen:  # plan marks (none while a sweep streams in)
            setting = model.setting_at(column)
            if setting is not None and setting.label in chosen.get(model.layers[row], ()):
                painter.setPen(self._pen)
                painter.drawRect(rect.adjusted(1, 1, -2, -2))
        painter.restore()


class SensitivityHeatmap(QWidget):
    """Emits `cellClicked(layer, column kind, setting label)` and `layersSelected(names)`."""

    cellClicked = Signal(str, str, str)
    layersSelected = Signal(list)

    def __init__(self, model: SensitivityTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.chosen: dict[str, set[str]] = {}  # layer -> labels of settings in the current plan
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        top = QHBoxLayout()
        self.title = QLabel("<b>Drop</b>")  # short: at 1366 px the legend and the row order share its line
        self.title.setObjectName("heatmapTitle")
        self.title.setToolTip("Drop of the metric per layer (rows) and setting (columns)")
        top.addWidget(self.title)
        top.addStretch(1)
        self.legend = QLabel(self._legend_html())
        self.legend.setObjectName("heatmapLegend")
        self.legend.setToolTip("Drop of the metric with only that change on only that layer (log colour scale).")
        top.addWidget(self.legend)
        for label in (self.title, self.legend):  # a narrow dock cuts these rather than the dock growing wider
            label.setMinimumWidth(1)
        top.addSpacing(12)
        top.addWidget(QLabel("Rows:"))
        self.order_combo = QComboBox()
        self.order_combo.setObjectName("heatmapOrder")
        self.order_combo.addItems(ROW_ORDERS)
        self.order_combo.setToolTip("Sort layers by their mean drop (robustness), or keep the model's order.")
        self.order_combo.currentIndexChanged.connect(self._order_changed)
        top.addWidget(self.order_combo)
        layout.addLayout(top)

        self.proxy = BatchedRolesProxy(self)
        self.proxy.setSourceModel(model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = QTableView()
        self.view.setObjectName("sensitivityHeatmap")
        self.view.setModel(self.proxy)
        self.view.setShowGrid(True)
        set_sheet(self.view, "QTableView#sensitivityHeatmap { gridline-color: #ffffff; }"
                                "QHeaderView::section:horizontal { font-size: 9pt; padding: 3px 2px; }"
                                "QHeaderView::section:vertical { padding: 0px 6px; }")
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setMouseTracking(True)
        self.view.setItemDelegate(_HeatDelegate(self))
        header = self.view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        header.setDefaultSectionSize(58)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignCenter)
        header.setSortIndicatorClearable(True)
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        header.setHighlightSections(False)
        self.view.setSortingEnabled(True)
        vertical = self.view.verticalHeader()
        vertical.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(22)
        vertical.setDefaultAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        vertical.setHighlightSections(True)  # selected layers (the curves' layers) stand out by name
        self.model.modelReset.connect(self._fit_columns)
        self.view.clicked.connect(self._clicked)
        self.view.selectionModel().selectionChanged.connect(self._selection_changed)
        self.hint = QLabel("Start a sweep: each cell will show how much the metric drops when only that layer "
                           "gets only that setting.\nClick a cell to plan it; select rows to compare their curves.")
        self.hint.setObjectName("heatmapHint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        set_sheet(self.hint, "color: #80868b; background: #ffffff; border: 1px solid #e3e5e8; border-radius: 6px;")
        self.pages = QStackedWidget()
        self.pages.addWidget(self.hint)
        self.pages.addWidget(self.view)
        layout.addWidget(self.pages, 1)

    @staticmethod
    def _legend_html() -> str:
        def swatch(colour: QColor, text: str) -> str:
            return f"<span style='background:{colour.name()}'>&nbsp;&nbsp;&nbsp;&nbsp;</span>&nbsp;{text}"

        parts = [swatch(drop_colour(d, "accuracy"), t) for d, t in ((0.0, "0"), (0.01, "1"), (0.03, "3"), (0.1, "≥10 pp"))]
        return "&nbsp;&nbsp;".join(parts) + f"&nbsp;&nbsp;&nbsp;{swatch(gain_colour(0.05), 'keep float wins')}"

    # --- state -----------------------------------------------------------------------------
    def set_chosen(self, chosen: dict[str, set[str]]) -> None:
        if chosen != self.chosen:
            self.chosen = chosen
            self.view.viewport().update()

    def set_metric_label(self, metric: str, unit: str) -> None:
        self.title.setText(f"<b>Drop in {metric}{unit}</b>")

    def selected_layers(self) -> list[str]:
        rows = sorted({self.proxy.mapToSource(i).row() for i in self.view.selectionModel().selectedIndexes()})
        return [self.model.layers[r] for r in rows if 0 <= r < len(self.model.layers)]

    def sort_rows(self, order: str) -> None:
        self.order_combo.setCurrentIndex(ROW_ORDERS.index(order))

    def layer_order(self) -> list[str]:
        """The layers as the view shows them (after sorting)."""
        return [self.model.layers[self.proxy.mapToSource(self.proxy.index(r, 0)).row()]
                for r in range(self.proxy.rowCount())]

    def index_of(self, layer: str, label: str) -> QModelIndex:
        """The view's index of a cell (for tests and keyboard navigation)."""
        row = self.model.layers.index(layer)
        column = next(i for i, s in enumerate(self.model.settings) if s.label == label)
        return self.proxy.mapFromSource(self.model.index(row, column))

    def _fit_columns(self) -> None:
        """Every column as wide as its widest header line (numbers are shorter); the hint until then."""
        self.pages.setCurrentWidget(self.view if self.model.columnCount() else self.hint)
        metrics = self.view.horizontalHeader().fontMetrics()
        for column in range(self.model.columnCount()):
            text = str(self.model.headerData(column, Qt.Orientation.Horizontal) or "")
            width = max(metrics.horizontalAdvance(line) for line in text.split("\n")) if text else 0
            self.view.setColumnWidth(column, max(46, width + 12))
        # lay the new table out now: the reset's own, delayed layout came after the first paint and
        # painted the whole table a second time
        self.view.doItemsLayout()

    # --- slots -----------------------------------------------------------------------------
    def _order_changed(self, index: int) -> None:
        mean_column = self.model.columnCount() - 1
        if index == 0 or mean_column < 0:
            if self.proxy.sortColumn() != -1:  # a sort call re-lays out (and repaints) the whole table
                self.view.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
                self.proxy.sort(-1)
            return
        order = Qt.SortOrder.AscendingOrder if index == 1 else Qt.SortOrder.DescendingOrder
        self.view.sortByColumn(mean_column, order)

    def reapply_order(self) -> None:
        """After the table was laid out again (a new sweep), keep the chosen row order."""
        self._order_changed(self.order_combo.currentIndex())

    def _clicked(self, index: QModelIndex) -> None:
        source = self.proxy.mapToSource(index)
        if not source.isValid():
            return
        kind = self.model.column_kind(source.column())
        setting = self.model.setting_at(source.column())
        self.cellClicked.emit(self.model.layers[source.row()], kind, setting.label if setting else "")

    def _selection_changed(self, *_: object) -> None:
        self.layersSelected.emit(self.selected_layers())
