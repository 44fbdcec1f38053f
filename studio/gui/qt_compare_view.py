"""Compare view: the original against the compressed model after a run or a plain compression.

A thin reader of the typed report: the rows (headline, figures, per-layer bars) are computed in
studio.core.report.rows, which the CLI prints too; the table is a small `QAbstractTableModel` over
them and the per-layer chart a horizontal bar chart readable for dozens of layers.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QListWidget, QPushButton,
                               QSplitter, QTableView, QVBoxLayout, QWidget)

from studio.core.report.compression import CompressionReport
from studio.core.report.rows import CompareRow, compare_rows, headline, layer_bars, subline
from studio.gui.qt_layer_bars import AFTER_COLOUR, BEFORE_COLOUR, LayerBars
from studio.gui.qt_theme import set_sheet

BETTER, WORSE, NEUTRAL = QColor("#188038"), QColor("#c5221f"), QColor("#5f6368")
COLUMNS = ("Metric", "Original", "Compressed", "Change")
_Index = QModelIndex | QPersistentModelIndex


class CompareTableModel(QAbstractTableModel):
    """Read-only rows of `compare_rows`; numbers right-aligned, the change coloured by verdict."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[CompareRow] = []
        self._bold = QFont()
        self._bold.setBold(True)

    def set_rows(self, rows: list[CompareRow]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(COLUMNS):
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int((Qt.AlignmentFlag.AlignLeft if section == 0 else Qt.AlignmentFlag.AlignRight)
                           | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        row, column = self.rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (row.metric, row.original, row.compressed, row.change)[column]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            horizontal = Qt.AlignmentFlag.AlignLeft if column == 0 else Qt.AlignmentFlag.AlignRight
            return int(horizontal | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and column == 3:
            return BETTER if row.verdict > 0 else WORSE if row.verdict < 0 else NEUTRAL
        if role == Qt.ItemDataRole.FontRole and column == 3 and row.verdict:
            return self._bold
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.tooltip or None
        return None


class CompareView(QWidget):
    """Headline, figures table, per-layer bars, warnings and Keep / Save… / Discard."""

    keepRequested = Signal()
    saveRequested = Signal()
    discardRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        set_sheet(self,
            "QLabel#compareHeadline { font-size: 14pt; font-weight: 600; color: #202124; }"
            "QLabel#compareSubline { color: #5f6368; }"
            "QLabel#warningsTitle { color: #9a6700; font-weight: 600; }"
            "QListWidget#compareWarnings { background: #fef7e0; border: 1px solid #f9d77e; border-radius: 6px;"
            " color: #7a4f01; }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)
        self.headline = QLabel()
        self.headline.setObjectName("compareHeadline")
        self.headline.setWordWrap(True)
        self.subline = QLabel()
        self.subline.setObjectName("compareSubline")
        self.subline.setWordWrap(True)
        layout.addWidget(self.headline)
        layout.addWidget(self.subline)
        self.prediction = QLabel()  # sensitivity's predicted vs measured drop and size (issue 10)
        self.prediction.setObjectName("comparePrediction")
        self.prediction.setWordWrap(True)
        set_sheet(self.prediction, "background: #e8f0fe; border-radius: 6px; padding: 5px 8px; color: #174ea6;")
        self.prediction.hide()
        self._predicted: Any = None
        self._report: CompressionReport | None = None
        layout.addWidget(self.prediction)

        self.model = CompareTableModel(self)
        self.table = QTableView()
        self.table.setObjectName("compareTable")
        self.table.setModel(self.model)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for column in (1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(90)
        self.table.setMinimumWidth(470)
        header.setHighlightSections(False)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.warnings_title = QLabel()
        self.warnings_title.setObjectName("warningsTitle")
        self.warnings = QListWidget()
        self.warnings.setObjectName("compareWarnings")
        self.warnings.setWordWrap(True)
        self.warnings.setMaximumHeight(110)
        self.warnings.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.warnings.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.table, 1)
        left_layout.addWidget(self.warnings_title)
        left_layout.addWidget(self.warnings)

        self.bars = LayerBars()
        self.bars_before, self.bars_after = self.bars.bars_before, self.bars.bars_after

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        chart = QWidget()
        chart_layout = QVBoxLayout(chart)
        chart_layout.setContentsMargins(0, 0, 0, 0)
        chart_layout.setSpacing(4)
        title = QLabel(f"<b>Size per layer</b> &nbsp; <span style='color:{BEFORE_COLOUR}'>■</span> original"
                       f" &nbsp;<span style='color:{AFTER_COLOUR}'>■</span> compressed")
        title.setObjectName("layerBarsTitle")
        title.setToolTip("Scroll over the chart to zoom into the layers; hover a bar for the layer's details.")
        chart_layout.addWidget(title)
        chart_layout.addWidget(self.bars, 1)
        splitter.addWidget(chart)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([530, 470])
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.discard_button = QPushButton("Discard")
        self.discard_button.setObjectName("discardButton")
        self.discard_button.setToolTip("Forget the compressed model; the original stays current.")
        self.save_button = QPushButton("Save…")
        self.save_button.setObjectName("saveButton")
        self.save_button.setToolTip("Save the compressed model, its recipe and this report to a folder.")
        self.keep_button = QPushButton("Keep as current model")
        self.keep_button.setObjectName("keepButton")
        self.keep_button.setProperty("primary", True)  # styled by resources/style.qss
        self.keep_button.setToolTip("Continue working on the compressed model (export it, compress it further).")
        for button, signal in ((self.discard_button, self.discardRequested), (self.save_button, self.saveRequested),
                               (self.keep_button, self.keepRequested)):
            button.clicked.connect(lambda _checked=False, s=signal: s.emit())
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.set_report(None)

    def set_report(self, report: CompressionReport | None) -> None:
        """Show a run's (or a compression's) report; None clears the view and disables the buttons."""
        self._report = report
        self._show_prediction()
        self.model.set_rows(compare_rows(report) if report else [])
        self.headline.setText(headline(report) if report else "No compressed model yet")
        self.subline.setText(subline(report) if report else
                             "Run a plan to compare the compressed model with the original here.")
        warnings = list(report.warnings) if report else []
        self.warnings.clear()
        self.warnings.addItems(warnings)
        self.warnings_title.setText(f"Warnings ({len(warnings)})")
        self.warnings.setVisible(bool(warnings))
        self.warnings_title.setVisible(bool(warnings))
        self.bars.set_bars(*layer_bars(report))
        for button in (self.keep_button, self.save_button, self.discard_button):
            button.setEnabled(report is not None)

    def set_prediction(self, prediction: Any) -> None:
        """What the sensitivity table predicts for the plan (None: nothing), shown next to the measurement."""
        self._predicted = prediction
        self._show_prediction()

    def _show_prediction(self) -> None:
        from studio.gui.qt_sensitivity_plan import predicted_vs_measured

        measured = self._report.to_dict() if self._report is not None and self._predicted is not None else {}
        text = predicted_vs_measured(self._predicted, measured)  # no prediction: no report walk either
        self.prediction.setText(text)
        self.prediction.setVisible(bool(text))


__all__ = ["CompareTableModel", "CompareView"]
