"""The export panel's tables: plain rows computed from the report (tests read them) and the
fixed-height table widget that shows every row without scrolling."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QSize, Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QSizePolicy, QTableWidget, QTableWidgetItem

from studio.core.base.units import format_bytes, format_count, format_percent

VERIFY_ROWS = ("Samples", "Max |diff|", "Cosine", "Top-1 agreement", "Accuracy", "File size", "Int8 mode")
DASH = "—"


def _ms(value: float | None) -> str:
    return DASH if value is None else f"{value:.3f} ms"


def _fraction(value: float | None) -> str:
    return DASH if value is None else format_percent(value)


def verification_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) rows of the verification table; plain data so tests can read it."""
    check = report.get("verification") or {}
    max_abs, cosine = check.get("max_abs"), check.get("cosine")
    labeled = check.get("labeled_samples") or check.get("samples")
    accuracy = _fraction(check.get("accuracy"))
    values = (
        format_count(check["samples"]) if check.get("samples") is not None else DASH,
        DASH if max_abs is None else f"{max_abs:.3g}",
        DASH if cosine is None else f"{cosine:.6f}",
        _fraction(check.get("top1_agreement")),
        accuracy if accuracy == DASH else f"{accuracy} (n={labeled})",
        format_bytes(report["file_bytes"]) if report.get("file_bytes") is not None else DASH,
        report.get("int8_mode") or DASH,
    )
    return list(zip(VERIFY_ROWS, values))


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


