"""The export panel's table widgets: fixed height, every row shown without scrolling; the rows
themselves come from studio.core.report.export_rows."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QSizePolicy, QTableWidget, QTableWidgetItem


def _table(object_name: str, rows: int, columns: tuple[str, ...]) -> QTableWidget:
    table = _FitTable(rows, len(columns))
    table.setObjectName(object_name)
    table.setHorizontalHeaderLabels(list(columns))
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
    table.setAlternatingRowColors(True)
    table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    table.horizontalHeader().setHighlightSections(False)
    table.verticalHeader().setHighlightSections(False)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
    return table


class _FitTable(QTableWidget):
    """Shows every row without scrolling: its size hint is its content, measured after styling."""

    def sizeHint(self) -> QSize:
        header = self.horizontalHeader()
        height = 0 if header.isHidden() else header.sizeHint().height()
        height += sum(self.verticalHeader().sectionSize(r) for r in range(self.rowCount()))
        return QSize(super().sizeHint().width(), height + 2 * self.frameWidth())

    def minimumSizeHint(self) -> QSize:
        return QSize(super().minimumSizeHint().width(), self.sizeHint().height())


def _title(text: str) -> QLabel:
    label = QLabel(f"<b>{text}</b>")
    label.setObjectName("tableTitle")
    return label


def _cell(text: str, align: Qt.AlignmentFlag = Qt.AlignmentFlag.AlignRight) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setTextAlignment(align | Qt.AlignmentFlag.AlignVCenter)
    return item


