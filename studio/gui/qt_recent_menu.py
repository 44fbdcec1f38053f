"""File ▸ Open Recent: the models opened last, refilled each time it opens."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QMenu, QWidget

from studio.core.base.units import clip_left
from studio.gui.qt_resources import clear_recent_sources, icon, recent_sources


class RecentMenu(QMenu):
    """Emits `chosen(source, weights)` ('' when no weights) and `changed()` after Clear."""

    chosen = Signal(str, str)
    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Open &Recent", parent)
        self.setIcon(icon("recent"))
        self.aboutToShow.connect(self.refill)
        self.refill()

    def refill(self) -> None:
        self.clear()
        entries = recent_sources()
        for entry in entries:
            source, weights = entry["source"] or "", entry["weights"] or ""
            action = self.addAction(clip_left(source, 70) + (" (+ weights)" if weights else ""))
            action.setToolTip(source + (f"\nweights: {weights}" if weights else ""))
            action.triggered.connect(lambda _c=False, s=source, w=weights: self.chosen.emit(s, w))
        if entries:
            self.addSeparator()
            self.addAction("Clear recent", self._clear)
        else:
            self.addAction("No recent models").setEnabled(False)

    def _clear(self) -> None:
        clear_recent_sources()
        self.refill()
        self.changed.emit()
