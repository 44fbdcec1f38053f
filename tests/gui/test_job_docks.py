"""Bringing a job's dock to the front repaints that dock, not the window (issue 16): counted paint
events of the central widget when the Run and Compare tabs take turns, as at the start and end
of every run."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QTreeView

from studio.gui.qt_job_docks import raise_dock, tab_of


class Paints(QObject):
    """Counts the paint events a widget receives that cover more than `share` of its area (a
    parent also gets small ones, for the background under a child that repaints itself)."""

    def __init__(self, widget, share: float = 0.0) -> None:
        super().__init__()
        self.count, self.widget, self.share, self.regions = 0, widget, share, []
        widget.installEventFilter(self)

    def eventFilter(self, _obj, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Paint:
            rect, size = event.region().boundingRect(), self.widget.size()
            self.regions.append(rect)
            if rect.width() * rect.height() > self.share * size.width() * size.height():
                self.count += 1
        return False


def window_with_docks(show):
    window = QMainWindow()
    window.setCentralWidget(QTreeView())
    docks = []
    for title in ("Run", "Compare", "Export"):
        dock = QDockWidget(title)
        dock.setObjectName(title)
        dock.setWidget(QLabel(f"the {title} panel"))
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        docks.append(dock)
    window.tabifyDockWidget(docks[0], docks[1])
    window.tabifyDockWidget(docks[1], docks[2])
    show(window, 900, 700)
    return window, docks


def test_switching_tabs_does_not_repaint_the_central_widget(qtbot, show):
    window, docks = window_with_docks(show)
    raise_dock(docks[0])
    qtbot.wait(20)
    central = Paints(window.centralWidget().viewport())
    shown = [Paints(dock.widget()) for dock in docks]
    for dock in (docks[1], docks[0], docks[1], docks[0]):
        raise_dock(dock)
        qtbot.waitUntil(lambda d=dock: d.widget().isVisible() and tab_of(d)[0].currentIndex() == tab_of(d)[1])
        qtbot.wait(20)
    assert shown[0].count >= 2 and shown[1].count >= 2  # each newly shown dock painted
    assert central.count == 0
    raise_dock(docks[1])  # already in front: nothing happens
    qtbot.wait(20)
    assert central.count == 0, central.regions

    # what QDockWidget.raise_ does instead (the measured cause): the whole central area repaints
    docks[0].raise_()
    qtbot.waitUntil(lambda: central.count > 0, timeout=2000)


def test_a_hidden_dock_is_shown_and_raised_the_ordinary_way(qtbot, show):
    window, docks = window_with_docks(show)
    docks[2].hide()
    assert tab_of(docks[2]) is None
    raise_dock(docks[2])
    qtbot.waitUntil(lambda: docks[2].widget().isVisible(), timeout=2000)


def test_the_window_shows_its_job_docks_by_their_tabs(qtbot, show):
    from studio.gui.qt_main_window import MainWindow

    window = show(MainWindow(), 1400, 900)
    docks = [*window.run.docks[:2], window.sensitivity.dock]
    for dock in docks:  # shown once: each gets its tab
        raise_dock(dock)
    qtbot.waitUntil(lambda: all(tab_of(dock) is not None for dock in docks), timeout=2000)
    qtbot.wait(200)  # what showing them repainted is done before counting
    central = Paints(window.centralWidget(), share=0.1)
    window.run.show_run()
    qtbot.waitUntil(lambda: docks[0].widget().isVisible(), timeout=2000)
    qtbot.wait(50)
    raise_dock(docks[1])  # what the end of a run does
    qtbot.waitUntil(lambda: docks[1].widget().isVisible(), timeout=2000)
    qtbot.wait(50)
    window.sensitivity.show()
    qtbot.waitUntil(lambda: docks[2].widget().isVisible(), timeout=2000)
    qtbot.wait(20)
    assert central.count == 0, central.regions
