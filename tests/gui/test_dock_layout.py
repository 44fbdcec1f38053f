"""At a laptop's 1366×768 an open panel (Run, Compare, Export, Sensitivity) must leave the layer
tree usable: below the tree it left ~4 rows, so in a short window the panels open beside it."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt

from studio.gui.qt_dock_layout import BELOW, BESIDE

MIN_ROWS = 12  # whole rows of the tree in view with a panel open at 1366×768


def visible_rows(view) -> int:
    """Rows drawn whole in the tree's viewport."""
    bottom, count = view.viewport().rect().bottom(), 0
    index = view.indexAt(QPoint(1, 1))
    while index.isValid() and view.visualRect(index).bottom() <= bottom:
        count += 1
        index = view.indexBelow(index)
    return count


def _panels(window) -> list:
    return [*window.run.docks, window.sensitivity.dock]


def test_every_panel_leaves_the_tree_its_rows_at_1366x768(qtbot, digits_window):
    window = digits_window
    window.resize(1366, 768)
    view = window.layers.view
    view.expandAll()
    for dock in _panels(window):
        dock.show()
        dock.raise_()
        qtbot.waitUntil(lambda d=dock: d.isVisible() and not d.visibleRegion().isEmpty(), timeout=5000)
        assert window.dockWidgetArea(dock) == BESIDE
        rows = visible_rows(view)
        assert rows >= MIN_ROWS, (dock.objectName(), rows)
        assert dock.width() >= window.width() * 0.4, (dock.objectName(), dock.width())  # the charts' room


def test_a_tall_window_opens_the_panels_below_the_tree(qtbot, digits_window):
    window = digits_window
    window.resize(1500, 1000)
    assert all(window.dockWidgetArea(dock) == BELOW for dock in _panels(window))
    window.resize(1366, 768)
    assert all(window.dockWidgetArea(dock) == BESIDE for dock in _panels(window))
    assert not any(dock.isVisible() for dock in _panels(window))  # moving them opens none


def test_a_panel_the_user_moved_stays_where_they_put_it(qtbot, digits_window):
    window = digits_window
    window.resize(1366, 768)
    run = window.run.docks[0]
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, run)  # what dragging it there does
    assert not window.dock_placement.automatic
    window.resize(1500, 1000)
    assert window.dockWidgetArea(run) == Qt.DockWidgetArea.LeftDockWidgetArea
