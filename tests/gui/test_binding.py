"""The Qt binding itself must be sound: PySide6 6.12.0 on Python 3.11 drops a reference to
None on every call of a void method, so a long run of chart paints crashed the process
("deallocating None"). pyproject pins it out; this test catches a binding that regresses."""

from __future__ import annotations

import sys

from PySide6.QtCore import QPointF
from PySide6.QtGui import QImage, QPainter, QPen


def test_void_calls_keep_none_alive():
    image = QImage(16, 16, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        before = sys.getrefcount(None)
        for _ in range(2000):
            painter.setPen(QPen())
            painter.drawLine(QPointF(0, 0), QPointF(5, 5))
            painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        lost = before - sys.getrefcount(None)
    finally:
        painter.end()
    assert lost < 100, f"the Qt binding leaks references to None ({lost} lost in 6000 calls): pin another PySide6"
