"""Where the job panels open. In a tall window Run, Compare, Export and Sensitivity are tabbed
below the layer tree. In a short one (a 1366×768 laptop) a panel below left the tree about 4
rows, so there Run, Compare and Export open beside it, tabbed with the layer details, and the
tree keeps the window's height; Sensitivity stays below at half the height, because its heatmap
of layers × settings needs the window's width more than the tree needs rows. The placement
follows the window's height until the user moves a panel or a saved layout is restored: from
then on their layout wins."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow

BELOW, BESIDE = Qt.DockWidgetArea.BottomDockWidgetArea, Qt.DockWidgetArea.RightDockWidgetArea
BESIDE_SHARE = 0.6  # of the window's width, for a panel opening beside the tree (the run's charts want it)
BELOW_SHARE = 0.5  # of the window's height, for Sensitivity below the tree in a short window


class DockPlacement(QObject):
    """Keeps `docks` tabbed together below the tree, or `docks` beside it (with `details`) and
    `wide` (panels that need the width) below it."""

    def __init__(self, window: QMainWindow, docks: list[QDockWidget], wide: list[QDockWidget],
                 details: QDockWidget, tall: int) -> None:
        super().__init__(window)
        self.window, self.docks, self.wide, self.details, self.tall = window, docks, wide, details, tall
        self.automatic = True  # False once the user placed a panel or a saved layout was restored
        self._moving = False
        self._sized: set[str] = set()  # the panels that got their first size in the current placement
        self._place(BELOW)
        for dock in docks + wide:
            dock.hide()
            dock.dockLocationChanged.connect(self._moved)
            dock.visibilityChanged.connect(lambda visible, d=dock: self._shown(d) if visible else None)

    def area(self) -> Qt.DockWidgetArea:
        return BESIDE if self.window.height() < self.tall else BELOW

    def fit(self) -> None:
        """Move the panels where the window's height wants them (call on resize)."""
        if self.automatic and self.window.dockWidgetArea(self.docks[0]) != self.area():
            shown = [dock.isVisible() for dock in self.docks + self.wide]
            self._place(self.area())
            for dock, visible in zip(self.docks + self.wide, shown):
                dock.setVisible(visible)

    def _place(self, area: Qt.DockWidgetArea) -> None:
        self._moving = True
        self._sized.clear()
        try:
            window = self.window
            for dock in self.docks:
                window.addDockWidget(area, dock)
            for dock in self.wide:
                window.addDockWidget(BELOW, dock)
            group = ([self.details] if window.dockWidgetArea(self.details) == area else []) + self.docks
            if area == BELOW:
                group += self.wide
            for first, second in zip(group, group[1:]):
                window.tabifyDockWidget(first, second)
        finally:
            self._moving = False

    def _moved(self, _area: Qt.DockWidgetArea) -> None:
        if not self._moving:
            self.automatic = False

    def _shown(self, dock: QDockWidget) -> None:
        """In a short window a panel gets its share the first time it opens (or what it needs):
        beside the tree BESIDE_SHARE of the width, below it BELOW_SHARE of the height. Later the
        user's splitter wins."""
        if not self.automatic or self.area() != BESIDE or dock.objectName() in self._sized:
            return
        if self.window.dockWidgetArea(dock) == BESIDE:
            self._sized.update(d.objectName() for d in self.docks)  # one tab group: one width
            width = max(int(self.window.width() * BESIDE_SHARE), dock.minimumSizeHint().width())
            self.window.resizeDocks([dock], [width], Qt.Orientation.Horizontal)
        else:
            self._sized.add(dock.objectName())
            height = max(int(self.window.height() * BELOW_SHARE), dock.minimumSizeHint().height())
            self.window.resizeDocks([dock], [height], Qt.Orientation.Vertical)
