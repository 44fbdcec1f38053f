"""Where the Run, Compare, Export and Sensitivity panels open. In a tall window they are tabbed
below the layer tree; in a short one (a 1366×768 laptop) a panel below left the tree about 4
rows, so there they open beside it, tabbed with the layer details, and the tree keeps the
window's height. The placement follows the window's height until the user moves a panel or a
saved layout is restored: from then on their layout wins."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow

BELOW, BESIDE = Qt.DockWidgetArea.BottomDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
BESIDE_SHARE = 0.5  # of the window's width, for a panel opening beside the tree


class DockPlacement(QObject):
    """Keeps `docks` tabbed together, below the tree or beside it (with `details`)."""

    def __init__(self, window: QMainWindow, docks: list[QDockWidget], details: QDockWidget, tall: int) -> None:
        super().__init__(window)
        self.window, self.docks, self.details, self.tall = window, docks, details, tall
        self.automatic = True  # False once the user placed a panel or a saved layout was restored
        self._moving = False
        self._sized = False  # whether the panels beside the tree got their first width
        self._place(BELOW)
        for dock in docks:
            dock.hide()
            dock.dockLocationChanged.connect(self._moved)
            dock.visibilityChanged.connect(lambda visible, d=dock: self._shown(d) if visible else None)

    def area(self) -> Qt.DockWidgetArea:
        return BESIDE if self.window.height() < self.tall else BELOW

    def fit(self) -> None:
        """Move the panels where the window's height wants them (call on resize)."""
        if self.automatic and self.window.dockWidgetArea(self.docks[0]) != self.area():
            shown = [dock.isVisible() for dock in self.docks]
            self._place(self.area())
            for dock, visible in zip(self.docks, shown):
                dock.setVisible(visible)

    def _place(self, area: Qt.DockWidgetArea) -> None:
        self._moving, self._sized = True, False
        try:
            window = self.window
            for dock in self.docks:
                window.addDockWidget(area, dock)
            group = ([self.details] if window.dockWidgetArea(self.details) == area else []) + self.docks
            for first, second in zip(group, group[1:]):
                window.tabifyDockWidget(first, second)
        finally:
            self._moving = False

    def _moved(self, _area: Qt.DockWidgetArea) -> None:
        if not self._moving:
            self.automatic = False

    def _shown(self, dock: QDockWidget) -> None:
        """The first panel opening beside the tree takes half the width, or what it needs (the run's
        charts); the tree keeps the rest and the whole height. Later the user's splitter wins."""
        if self.automatic and not self._sized and self.window.dockWidgetArea(dock) == BESIDE:
            self._sized = True
            width = max(int(self.window.width() * BESIDE_SHARE), dock.minimumSizeHint().width())
            self.window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
