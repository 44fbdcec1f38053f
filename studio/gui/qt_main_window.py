"""The main window: composes the panels and actions; all work runs through `JobRunner`.

Nothing here imports torch or the loaders at import time, so the window appears
before the heavy libraries load (the open pipeline is imported on the worker thread).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QMimeData, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QIcon, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QMainWindow, QMenu, QMessageBox, QProgressBar, QStackedWidget, QToolButton, QVBoxLayout, QWidget,
)

from studio.core.base.events import Finished, StageStarted
from studio.gui.qt_details_panel import DetailsPanel
from studio.gui.qt_empty_state import EmptyState
from studio.gui.qt_layer_view import LayerTreePanel
from studio.gui.qt_resources import (
    APPLICATION, add_recent_source, icon, recent_sources, settings,
)
from studio.gui.qt_recent_menu import RecentMenu
from studio.gui.qt_summary_strip import SummaryStrip
from studio.gui.qt_worker import JobRunner

if TYPE_CHECKING:
    from studio.core.base.cancel import CancelToken
    from studio.core.model.input_spec import InputSpec
    from studio.core.model.loaders import LoadRequest
    from studio.core.pipelines.opening import OpenedModel

LAYOUT_VERSION = 2  # bump when docks are added or renamed: an old saved layout is then ignored
TRUST_TITLES = {"trust": "Untrusted code", "trust_remote_code": "Remote code"}


def _sample_names() -> list[str]:
    from studio.core.model.loaders.samples import SAMPLES  # torch-free

    return list(SAMPLES)


def _make_request(source: str, weights: str | None = None) -> LoadRequest:
    from studio.core.model.loaders import LoadRequest  # torch-free, but kept off the import path

    return LoadRequest(source=source, weights=weights)


class MainWindow(QMainWindow):
    """Open, inspect and browse a model; errors never close the window."""

    modelShown = Signal()
    loadFailed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mainWindow")
        self.setWindowTitle(APPLICATION)
        self.setAcceptDrops(True)
        self.runner = JobRunner(self)
        self.runner.event.connect(self._on_event)
        self.runner.failed.connect(self._on_failed)
        self.runner.busyChanged.connect(self._set_busy)
        self.opened: OpenedModel | None = None
        self.last_error_dialog: QMessageBox | None = None
        self.last_trust_dialog: QMessageBox | None = None
        self._request: LoadRequest | None = None  # what Reload reopens
        self._job: tuple[str, Any] = ("", None)  # ("open", request) | ("reinspect", spec)

        self.summary = SummaryStrip()
        self.layers = LayerTreePanel()
        self.details = DetailsPanel(self)
        self.layers.layerSelected.connect(self.details.show_node)
        self.empty = EmptyState(_sample_names())
        self.empty.sampleChosen.connect(lambda source: self.open_source(_make_request(source)))
        self.empty.openRequested.connect(self.open_dialog)
        self.empty.recentChosen.connect(lambda source, weights: self.open_source(_make_request(source, weights or None)))
        self.empty.set_recent(recent_sources())

        content = QWidget()
        content.setObjectName("contentPage")
        column = QVBoxLayout(content)
        column.setContentsMargins(12, 12, 6, 6)
        column.setSpacing(10)
        column.addWidget(self.summary)
        from studio.gui.qt_plan_controller import PlanController

        self.plan = PlanController(self)
        column.addWidget(self.plan.budget)
        column.addWidget(self.layers, 1)
        self.stack = QStackedWidget()
        self.stack.addWidget(self.empty)
        self.stack.addWidget(content)
        self.setCentralWidget(self.stack)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.details)
        self.details.hide()

        self.progress = QProgressBar()
        self.progress.setObjectName("busyIndicator")
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(160)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().showMessage("Ready")
        from studio.gui.qt_run_controller import RunController

        self.run = RunController(self)
        from studio.gui.qt_sensitivity_controller import SensitivityController

        self.sensitivity = SensitivityController.from_window(self)
        self._create_actions()
        self._set_busy(False)
        self._restore_layout()

    def _restore_layout(self) -> None:
        """Geometry and dock layout as the user left them (never on the first start)."""
        store = settings()
        geometry, state = store.value("window/geometry"), store.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state, LAYOUT_VERSION)

    # --- actions -------------------------------------------------------------------
    def _action(self, text: str, slot: Any, shortcut: Any = None, icon_name: str = "", tip: str = "") -> QAction:
        action = QAction(icon(icon_name) if icon_name else QIcon(), text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip or text.replace("&", "").rstrip("…"))
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _create_actions(self) -> None:
        key = QKeySequence.StandardKey
        self.open_action = self._action("&Open…", self.open_dialog, key.Open, "open", "Open a model file, folder or factory")
        self.reload_action = self._action("&Reload", self.reload, "F5", "reload", "Load the current model again")
        self.spec_action = self._action("&Input spec…", self.edit_input_spec, "Ctrl+I", "input_spec",
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
            action.triggered.connect(lambda _c=False, n=name: self.open_source(_make_request(f"sample:{n}")))
        self.recent_menu = RecentMenu(self)
        self.recent_menu.chosen.connect(lambda source, weights: self.open_source(_make_request(source, weights or None)))
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
        self.progress.setVisible(busy)
        for widget in (self.open_action, self.sample_menu, self.recent_menu, self.sample_button, self.empty):
            widget.setEnabled(not busy)
        self.reload_action.setEnabled(not busy and self._request is not None)
        self.spec_action.setEnabled(not busy and self.opened is not None)
        for action in (self.expand_action, self.collapse_action, self.find_action, self.run.run_action,
                       self.run.export_action):
            action.setEnabled(self.opened is not None)

    # --- opening -------------------------------------------------------------------
    def open_source(self, request: LoadRequest) -> None:
        """Load and inspect `request` on the worker thread; the current model stays until it succeeds."""
        def job(token: CancelToken) -> Any:
            from studio.core.pipelines.opening import open_model  # imports torch: worker thread only

            return open_model(request, token)

        self._job = ("open", request)
        self.statusBar().showMessage(f"Loading {request.source}…")
        self.runner.start(job)

    def open_dialog(self) -> None:
        from studio.gui.qt_open_dialog import OpenModelDialog

        dialog = OpenModelDialog(self)
        dialog.accepted.connect(lambda: self.open_source(dialog.request()))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()

    def reload(self) -> None:
        if self._request is not None and not self.runner.busy:
            self.open_source(self._request)

    def edit_input_spec(self) -> None:
        if self.opened is None or self.runner.busy:
            return
        from studio.gui.qt_input_spec_dialog import InputSpecDialog

        dialog = InputSpecDialog(str(self.opened.loaded.input_spec), self)
        dialog.accepted.connect(lambda: self.reinspect(dialog.spec()))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()

    def reinspect(self, spec: InputSpec | None) -> None:
        """Inspect the loaded model again with `spec` (no reload); failure keeps the old tree."""
        if self.opened is None or spec is None:
            return
        loaded = self.opened.loaded

        def job(token: CancelToken) -> Any:
            from studio.core.pipelines.opening import reinspect

            return reinspect(loaded, spec, token)

        self._job = ("reinspect", spec)
        self.runner.start(job)

    # --- job events ----------------------------------------------------------------
    def _on_event(self, event: object) -> None:
        if isinstance(event, StageStarted):
            verb = "Loading" if event.name == "load" else "Inspecting with" if event.name == "inspect" else event.name
            self.statusBar().showMessage(f"{verb} {event.detail}…")
        elif isinstance(event, Finished):
            self._show_opened(event.result)

    def _show_opened(self, opened: OpenedModel) -> None:
        kind, payload = self._job
        self.opened = opened
        if kind == "open":
            self._request = payload
            add_recent_source(payload.source, payload.weights)
        loaded, tree = opened.loaded, opened.tree
        self.setWindowTitle(f"{APPLICATION} — {loaded.name}")
        stored = ((loaded.extras.get("run_report") or {}).get("after") or {}).get("bytes")
        self.summary.show_model(loaded.name, loaded.kind, tree, stored)
        self.details.set_notes(tuple(tree.notes))
        self.layers.set_tree(tree)
        self.stack.setCurrentIndex(1)
        self.details.show()
        if kind in ("open", "loaded"):
            self.plan.model_changed()
            self.run.model_changed()
        else:
            self.plan.refresh()
        seconds = opened.load_seconds + opened.inspect_seconds
        verb = "Loaded" if kind == "open" else f"Inspected with {tree.input_spec}"
        self.statusBar().showMessage(f"{verb} in {seconds:.2f} s")
        self.modelShown.emit()

    def show_loaded(self, loaded: Any) -> None:
        """Show an in-memory model (a kept compression result); it is inspected on the worker."""
        def job(token: CancelToken) -> Any:
            from studio.core.pipelines.opening import reinspect

            return reinspect(loaded, loaded.input_spec, token)

        self._job = ("loaded", loaded)
        self.runner.start(job)

    def _on_failed(self, message: str, untrusted: str) -> None:
        kind, payload = self._job
        self.statusBar().showMessage("Could not open the model" if kind == "open" else "Inspection failed")
        if untrusted and kind == "open":
            self._ask_trust(payload, message, untrusted)
        else:
            self._show_error(message, "Could not open model" if kind == "open" else "Could not inspect model")
        self.loadFailed.emit(message)

    def show_error(self, message: str, title: str = "Error") -> None:
        self._show_error(message, title)

    def _show_error(self, message: str, title: str) -> None:
        if self.last_error_dialog is not None:
            self.last_error_dialog.deleteLater()
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("errorDialog")
        self.last_error_dialog = box
        box.open()

    def _ask_trust(self, request: LoadRequest, message: str, option: str) -> None:
        """Trust is asked each time, never remembered: the question is the loader's own reason."""
        question = f"{message}\n\nLoad it only if you trust its source. Load anyway?"
        box = QMessageBox(QMessageBox.Icon.Question, TRUST_TITLES.get(option, "Untrusted code"), question,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setObjectName("trustDialog")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        yes = box.button(QMessageBox.StandardButton.Yes)
        yes.setText("Load anyway")

        def answered(_result: int) -> None:
            if box.clickedButton() is yes:
                self.open_source(replace(request, **{option: True}))

        box.finished.connect(answered)
        self.last_trust_dialog = box
        box.open()

    # --- window --------------------------------------------------------------------
    def open_dropped(self, mime: QMimeData) -> bool:
        """Open the first local file/folder in `mime`; a .py asks for the factory name."""
        paths = [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]
        if not paths or self.runner.busy:
            return False
        path = paths[0]
        if path.endswith(".py"):
            from studio.gui.qt_open_dialog import OpenModelDialog

            dialog = OpenModelDialog(self)
            dialog.preset_factory(path)
            dialog.accepted.connect(lambda: self.open_source(dialog.request()))
            dialog.finished.connect(dialog.deleteLater)
            dialog.open()
        else:
            self.open_source(_make_request(path))
        return True

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.isLocalFile() for url in event.mimeData().urls()) and not self.runner.busy:
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
        self.run.shutdown()  # cancels a running compression and joins its thread
        self.runner.shutdown()
        super().closeEvent(event)

