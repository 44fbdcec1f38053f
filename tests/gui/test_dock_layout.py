"""At a laptop's 1366×768 an open job panel must leave the layer tree usable: below the tree Run
or Compare left ~4 rows, so in a short window Run, Compare and Export open beside it.
Sensitivity stays below (its heatmap needs the width), at half the height."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt

from studio.gui.qt_dock_layout import BELOW, BESIDE

MIN_ROWS = 12  # whole rows of the tree in view with Run, Compare or Export open at 1366×768 (20 measured)


def visible_rows(view) -> int:
    """Rows drawn whole in the tree's viewport."""
    bottom, count = view.viewport().rect().bottom(), 0
    index = view.indexAt(QPoint(1, 1))
    while index.isValid() and view.visualRect(index).bottom() <= bottom:
        count += 1
        index = view.indexBelow(index)
    return count


def _show(qtbot, dock) -> None:
    dock.show()
    dock.raise_()
    qtbot.waitUntil(lambda: dock.isVisible() and not dock.visibleRegion().isEmpty(), timeout=5000)


def test_run_compare_and_export_leave_the_tree_its_rows_at_1366x768(qtbot, digits_window):
    window = digits_window
    window.resize(1366, 768)
    view = window.layers.view
    view.expandAll()
    for dock in window.run.docks:
        _show(qtbot, dock)
        assert window.dockWidgetArea(dock) == BESIDE
        rows = visible_rows(view)
        assert rows >= MIN_ROWS, (dock.objectName(), rows)
        assert dock.width() >= window.width() * 0.5, (dock.objectName(), dock.width())  # the charts' room
    sensitivity = window.sensitivity.dock
    _show(qtbot, sensitivity)
    assert window.dockWidgetArea(sensitivity) == BELOW and sensitivity.width() > window.width() * 0.9
    assert sensitivity.height() >= window.height() * 0.4


def test_a_tall_window_tabs_every_panel_below_the_tree(qtbot, digits_window):
    window = digits_window
    panels = [*window.run.docks, window.sensitivity.dock]
    window.resize(1500, 1000)
    assert all(window.dockWidgetArea(dock) == BELOW for dock in panels)
    window.resize(1366, 768)
    assert all(window.dockWidgetArea(dock) == BESIDE for dock in window.run.docks)
    assert window.dockWidgetArea(window.sensitivity.dock) == BELOW
    assert not any(dock.isVisible() for dock in panels)  # moving them opens none


def test_a_panel_the_user_moved_stays_where_they_put_it(qtbot, digits_window):
    window = digits_window
    window.resize(1366, 768)
    run = window.run.docks[0]
    window.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, run)  # what dragging it there does
    assert not window.dock_placement.automatic
    window.resize(1500, 1000)
    assert window.dockWidgetArea(run) == Qt.DockWidgetArea.LeftDockWidgetArea
