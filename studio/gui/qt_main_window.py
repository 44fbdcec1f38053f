"""The main window: composes the panels, the controllers and the actions, and wires the
controllers' signals to each other. All work runs through the window's one `JobRunner`.

Nothing here imports torch or the loaders at import time, so the window appears
before the heavy libraries load (the open pipeline is imported on the worker thread).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QDragEnterEvent, QDropEvent, QKeySequence, QResizeEvent
from PySide6.QtWidgets import (
    QMainWindow, QMenu, QMessageBox, QProgressBar, QSizePolicy, QStackedWidget, QToolButton, QVBoxLayout, QWidget,
)

from studio.gui.qt_details_panel import DetailsPanel
from studio.gui.qt_dock_layout import DockPlacement
from studio.gui.qt_empty_state import EmptyState
from studio.gui.qt_layer_view import LayerTreePanel
from studio.gui.qt_process_worker import ProcessWorker
from studio.gui.qt_open_controller import CurrentModel, OpenController, make_request
from studio.gui.qt_resources import APPLICATION, icon, recent_sources, settings
from studio.gui.qt_recent_menu import RecentMenu
from studio.gui.qt_summary_strip import SummaryStrip
from studio.gui.qt_worker import JobRunner

if TYPE_CHECKING:
    from studio.core.pipelines.opening import OpenedModel

LAYOUT_VERSION = 3  # bump when docks are added, renamed or placed anew: an old saved layout is then ignored
TALL_WINDOW = 900  # below this the tree needs the height: the Run dock waits for Run plan (F6)


def _sample_names() -> list[str]:
    from studio.core.model.loaders.samples import SAMPLES  # torch-free

    return list(SAMPLES)


class MainWindow(QMainWindow):
    """Open, inspect, plan, run and export a model; errors never close the window."""

    modelShown = Signal()
    loadFailed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle(APPLICATION)
        self.setAcceptDrops(True)
        # the only one: every controller's jobs go through it; jobs with a spec run in a child process
        self.runner = JobRunner(self, worker_class=ProcessWorker)
        self.runner.busyChanged.connect(self._set_busy)
        self.current = CurrentModel()
        self.last_error_dialog: QMessageBox | None = None

        self.summary = SummaryStrip()
        self.layers = LayerTreePanel()
        self.details = DetailsPanel(self)
        self.empty = EmptyState(_sample_names())
        self.empty.set_recent(recent_sources())
        from studio.gui.qt_plan_controller import PlanController
        from studio.gui.qt_run_controller import RunController
        from studio.gui.qt_sensitivity_controller import SensitivityController

        status, errors, runner, current = self._show_status, self.show_error, self.runner, self.current
        self.opening = OpenController(runner, current, status, errors, self)
        self.plan = PlanController(current, self.layers, runner, status, errors, self)
        self.run = RunController(runner, current, self.plan.document, status, errors, self)
        self.sensitivity = SensitivityController(runner, current, self.plan.document, self.layers, status, errors,
                                                 self)
        self.open_source, self.reload = self.opening.open_source, self.opening.reload
        self.reinspect, self.show_loaded = self.opening.reinspect, self.opening.show_loaded

        content = QWidget()
        content.setObjectName("contentPage")
        column = QVBoxLayout(content)
        column.setContentsMargins(12, 12, 6, 6)
        column.setSpacing(10)
        column.addWidget(self.summary)
        column.addWidget(self.plan.budget)
        column.addWidget(self.layers, 1)
        self.stack = QStackedWidget()
        # the welcome page never holds the window wide: a panel may open beside it (qt_dock_layout)
        self.empty.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.stack.addWidget(self.empty)
        self.stack.addWidget(content)
        self.setCentralWidget(self.stack)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.details)
        self.details.hide()
        self._place_docks()

        self.progress = QProgressBar()
        self.progress.setObjectName("busyIndicator")
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(160)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().showMessage("Ready")
        self._wire()
        self._create_actions()
        self._set_busy(False)
        self._restore_layout()

    @property
    def opened(self) -> OpenedModel | None:
        return self.current.opened

    @property
    def last_trust_dialog(self) -> QMessageBox | None:
        return self.opening.last_trust_dialog

    def _place_docks(self) -> None:
        """Run, Compare, Export and Sensitivity, hidden until asked for: tabbed below the tree in a
        tall window; in a short one the first three beside it (qt_dock_layout)."""
        self.dock_placement = DockPlacement(self, self.run.docks, [self.sensitivity.dock], self.details, TALL_WINDOW)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.dock_placement.fit()

    def _wire(self) -> None:
        """Sibling reactions: each controller knows only its collaborators; the window connects them."""
        opening, run, sensitivity = self.opening, self.run, self.sensitivity
        self.layers.layerSelected.connect(self.details.show_node)
        self.empty.sampleChosen.connect(lambda source: opening.open_source(make_request(source)))
        self.empty.openRequested.connect(opening.open_dialog)
        self.empty.recentChosen.connect(lambda source, weights: opening.open_source(make_request(source, weights or None)))
        opening.shown.connect(self._show_opened)
        opening.failed.connect(self.loadFailed)
        run.keepRequested.connect(opening.show_loaded)
        run.runStarted.connect(lambda: run.compare.set_prediction(sensitivity.prediction_for_run()))
        self.plan.projectionChanged.connect(sensitivity.set_projection)
        self.modelShown.connect(sensitivity.model_shown)

    def _restore_layout(self) -> None:
        """Geometry and dock layout as the user left them (never on the first start)."""
        store = settings()
        geometry, state = store.value("window/geometry"), store.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None and self.restoreState(state, LAYOUT_VERSION):
            self.dock_placement.automatic = False  # the user's own layout wins

    # --- actions -------------------------------------------------------------------
    def _action(self, text: str, slot: Any, shortcut: Any = None, icon_name: str = "", tip: str = "") -> QAction:
        action = QAction(icon(icon_name) if icon_name else QIcon(), text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip or text.replace("&", "").rstrip("…"))
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _create_actions(self) -> None:
        key, opening = QKeySequence.StandardKey, self.opening
        self.open_action = self._action("&Open…", opening.open_dialog, key.Open, "open",
                                        "Open a model file, folder or factory")
        self.reload_action = self._action("&Reload", opening.reload, "F5", "reload", "Load the current model again")
        self.spec_action = self._action("&Input spec…", opening.edit_input_spec, "Ctrl+I", "input_spec",
                                        "Change the example input used for FLOPs and shapes")
        self.expand_action = self._action("&Expand all", self.layers.expand_all, "Ctrl+E", "expand")
        self.collapse_action = self._action("&Collapse all", self.layers.collapse_all, "Ctrl+Shift+E", "collapse")
        self.find_action = self._action("&Find layer", self.layers.focus_filter, key.Find, "find")
        self.quit_action = self._action("&Quit", self.close, "Ctrl+Q")
        self.quit_action.setMenuRole(QAction.MenuRole.QuitRole)
        self.about_action = self._action("&About", self.about, None, "about")

        self.sample_menu = QMenu("Open &Sample", self)
        self.sample_menu.setIcon(icon("sample"))
        from studio.core.model.loaders.samples import SAMPLES  # torch-free

        for name, sample in SAMPLES.items():
            action = self.sample_menu.addAction(icon("sample"), name)
            action.setStatusTip(sample.description)
            action.setToolTip(sample.description)
            action.triggered.connect(lambda _c=False, n=name: opening.open_source(make_request(f"sample:{n}")))
        self.recent_menu = RecentMenu(self)
        self.recent_menu.chosen.connect(lambda source, weights: opening.open_source(make_request(source, weights or None)))
        self.recent_menu.changed.connect(lambda: self.empty.set_recent(recent_sources()))

        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.open_action)
        file_menu.addMenu(self.sample_menu)
        file_menu.addMenu(self.recent_menu)
        file_menu.addAction(self.reload_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        model_menu = self.menuBar().addMenu("&Model")
        model_menu.addAction(self.spec_action)
        plan_menu = self.menuBar().addMenu("&Plan")
        plan_menu.addActions(self.plan.actions())
        plan_menu.addSeparator()
        plan_menu.addActions([self.run.run_action, self.run.export_action, self.sensitivity.action])
        self.plan_menu = plan_menu
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addActions([self.find_action, self.expand_action, self.collapse_action])
        view_menu.addSeparator()
        view_menu.addAction(self.details.toggleViewAction())
        view_menu.addActions([dock.toggleViewAction() for dock in self.run.docks])
        view_menu.addAction(self.sensitivity.dock.toggleViewAction())
        view_menu.addSeparator()
        from studio.gui.qt_theme import theme_menu

        self.theme_menu = theme_menu(self)
        view_menu.addMenu(self.theme_menu)
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self.about_action)

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        toolbar.addAction(self.open_action)
        sample_button = QToolButton()
        sample_button.setMenu(self.sample_menu)
        sample_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        sample_button.setIcon(icon("sample"))
        sample_button.setText("Samples")
        sample_button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.sample_button = sample_button
        toolbar.addWidget(sample_button)
        toolbar.addAction(self.reload_action)
        toolbar.addSeparator()
        toolbar.addAction(self.spec_action)
        toolbar.addSeparator()
        toolbar.addActions([self.expand_action, self.collapse_action])
        toolbar.addSeparator()
        self.plan.undo_action.setIcon(icon("undo"))
        self.plan.redo_action.setIcon(icon("redo"))
        self.plan.undo_action.setIconText("Undo")  # the command's name goes to the tooltip, not the toolbar
        self.plan.redo_action.setIconText("Redo")
        toolbar.addActions([self.plan.undo_action, self.plan.redo_action])
        toolbar.addSeparator()
        toolbar.addActions([self.run.run_action, self.run.export_action, self.sensitivity.action])

    def _set_busy(self, busy: bool) -> None:
        """Opening stays possible while a job runs: it asks to cancel the job first."""
        self.progress.setVisible(busy)
        self.reload_action.setEnabled(self.current.request is not None)
        self.spec_action.setEnabled(self.current.opened is not None)
        for action in (self.expand_action, self.collapse_action, self.find_action, self.run.run_action,
                       self.run.export_action):
            action.setEnabled(self.current.opened is not None)

    def _show_status(self, text: str, timeout_ms: int = 0) -> None:
        self.statusBar().showMessage(text, timeout_ms)

    # --- a model was opened --------------------------------------------------------
    def _show_opened(self, opened: OpenedModel, kind: str) -> None:
        from studio.core.model.loaders import is_meta

        loaded, tree = opened.loaded, opened.tree
        self.setWindowTitle(f"{APPLICATION} — {loaded.name}")
        report = loaded.extras.get("report")  # a kept run or a reopened folder: the same typed report
        stored = report.after.bytes if report is not None else None
        self.summary.show_model(loaded.name, loaded.kind, tree, stored, weightless=is_meta(loaded))
        self.details.set_notes(tuple(tree.notes))
        self.layers.set_tree(tree)
        self.stack.setCurrentIndex(1)
        self.details.show()
        if kind in ("open", "loaded"):
            self.plan.model_changed()
            self.run.model_changed()
            if not any(dock.isVisible() for dock in self.run.docks) and self.height() >= TALL_WINDOW:
                self.run.show_run()  # ready below the tree; its first layout and paint happen now
                # the tree keeps most of the height; the charts stay readable
                self.resizeDocks([self.run.docks[0]], [max(280, int(self.height() * 0.36))], Qt.Orientation.Vertical)
        else:
            self.plan.refresh()
        self._set_busy(self.runner.busy)
        self.modelShown.emit()

    def show_error(self, message: str, title: str = "Error") -> None:
        if self.last_error_dialog is not None:
            self.last_error_dialog.deleteLater()
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("errorDialog")
        self.last_error_dialog = box
        box.open()

    # --- window --------------------------------------------------------------------
    def open_dropped(self, mime: QMimeData) -> bool:
        """Open the first local file/folder in `mime`; a .py asks for the factory name."""
        return self.opening.open_paths([url.toLocalFile() for url in mime.urls() if url.isLocalFile()])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        if self.open_dropped(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def about(self) -> None:
        from studio.gui.qt_about import show_about

        self.last_about_dialog = show_about(self)

    def closeEvent(self, event: QCloseEvent) -> None:
        store = settings()
        store.setValue("window/geometry", self.saveGeometry())
        store.setValue("window/state", self.saveState(LAYOUT_VERSION))
        self.runner.shutdown()  # cancels whatever runs and joins its thread
        super().closeEvent(event)
