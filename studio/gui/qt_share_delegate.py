"""In-cell bar for the Share column: where the parameters live is seen before it is read."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPalette
from PySide6.QtWidgets import QApplication, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from studio.gui.qt_layer_tree_model import SORT_ROLE

ACCENT = QColor("#2f6fde")


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
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)

        share = index.data(SORT_ROLE)
        fraction = min(max(float(share), 0.0), 1.0) if isinstance(share, (int, float)) else 0.0
        rect = QRectF(opt.rect).adjusted(4, 4, -4, -4)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setPen(Qt.PenStyle.NoPen)
        track = QColor(ACCENT)
        track.setAlpha(22)
        painter.setBrush(track)
        painter.drawRoundedRect(rect, 3, 3)
        if fraction > 0:
            bar = QRectF(rect)
            bar.setWidth(max(2.0, rect.width() * fraction))
            fill = QColor(ACCENT)
            fill.setAlpha(110)
            painter.setBrush(fill)
            painter.drawRoundedRect(bar, 3, 3)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        painter.setPen(opt.palette.color(role))
        painter.setFont(opt.font)
        painter.drawText(rect.adjusted(4, 0, -4, 0), int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
                         text)
        painter.restore()
