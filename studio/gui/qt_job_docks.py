"""Bringing a job's dock (Run, Compare, Export, Sensitivity) to the front without repainting the
window (issue 16: at the start and end of every run this was the GUI thread's longest stall).

`QDockWidget.raise_()` on a tabbed dock moves the dock to the top of the window's stacking order;
the dock layout then selects its tab and raises the central widget back above it, which repaints
the whole central area (the layer tree, the summary strip: 65 ms of the GUI thread for the digits
model on a quiet machine) although nothing there changed. Selecting the dock's tab, as a click on
the tab does, leaves the stacking order alone: only the newly shown dock is painted (5-20 ms).
"""

from __future__ import annotations

from PySide6.QtWidgets import QDockWidget, QMainWindow, QTabBar
from shiboken6 import getCppPointer


def tab_of(dock: QDockWidget) -> tuple[QTabBar, int] | None:
    """The window's tab bar and index that show `dock` (None: not tabbed, floating or hidden)."""
    window = dock.parentWidget()
    if not isinstance(window, QMainWindow) or dock.isFloating() or dock.isHidden():
        return None
    address = getCppPointer(dock)[0]  # the dock layout stores each tab's dock widget as its tab data
    for bar in window.findChildren(QTabBar):
        if bar.parentWidget() is window:
            for index in range(bar.count()):
                if bar.tabData(index) == address:
                    return bar, index
    return None


def raise_dock(dock: QDockWidget) -> None:
    """Show `dock` and make it the current tab of its group (a dock shown just now gets its tab by
    applying the window's layout at once); a dock in no tab group is raised the ordinary way."""
    dock.show()
    found = tab_of(dock)
    window = dock.parentWidget()
    if found is None and dock.isVisible() and isinstance(window, QMainWindow) and not dock.isFloating():
        window.layout().activate()  # a dock shown just now gets its tab when the layout is applied
        found = tab_of(dock)
    if found is None:
        dock.raise_()
        return
    bar, index = found
    if bar.currentIndex() != index:
        bar.setCurrentIndex(index)


__all__ = ["raise_dock", "tab_of"]
