"""In-cell bar for the Share column: where the parameters live is seen before it is read."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from studio.gui.qt_layer_tree_model import SORT_ROLE

ACCENT = QColor("#2f6fde")
_TRACK = QColor(ACCENT)
_TRACK.setAlpha(22)
_FILL = QColor(ACCENT)
_FILL.setAlpha(110)
# Looked up once: every enum member read costs Python calls, and paint runs once per visible row.
_ITEM = QStyle.ControlElement.CE_ItemViewItem
_SELECTED = QStyle.StateFlag.State_Selected
_ANTIALIAS = QPainter.RenderHint.Antialiasing
_NO_PEN = Qt.PenStyle.NoPen
_TEXT, _HIGHLIGHTED_TEXT = QPalette.ColorRole.Text, QPalette.ColorRole.HighlightedText
_RIGHT = int((Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter).value)


class ShareBarDelegate(QStyledItemDelegate):
    """Paints a horizontal bar proportional to the row's share, with the percentage on top."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        text = opt.text
        opt.text = ""
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        style.drawControl(_ITEM, opt, painter, widget)

        share = index.data(SORT_ROLE)
        fraction = min(max(float(share), 0.0), 1.0) if isinstance(share, (int, float)) else 0.0
        rect = QRectF(opt.rect).adjusted(4, 4, -4, -4)
        painter.save()
        painter.setRenderHint(_ANTIALIAS, True)
        painter.setPen(_NO_PEN)
        painter.setBrush(_TRACK)
        painter.drawRoundedRect(rect, 3, 3)
        if fraction > 0:
            bar = QRectF(rect)
            bar.setWidth(max(2.0, rect.width() * fraction))
            painter.setBrush(_FILL)
            painter.drawRoundedRect(bar, 3, 3)
        painter.setPen(opt.palette.color(_HIGHLIGHTED_TEXT if opt.state & _SELECTED else _TEXT))
        painter.setFont(opt.font)
        painter.drawText(rect.adjusted(4, 0, -4, 0), _RIGHT, text)
        painter.restore()
