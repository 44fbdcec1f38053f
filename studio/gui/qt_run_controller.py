"""Runs, the compare view and exports, wired to the window: every job goes through its own
`JobRunner` (one job at a time), events reach the panels on the main thread, and closing
the window cancels and joins whatever is running."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QScrollArea

from studio.core.base.events import Finished, RunCancelled
from studio.gui.qt_resources import icon
from studio.gui.qt_worker import JobRunner

if TYPE_CHECKING:
    from studio.core.base.cancel import CancelToken
    from studio.gui.qt_main_window import MainWindow


TALL_WINDOW = 900  # below this the tree needs the height: the Run dock waits for Run plan (F6)


class RunController(QObject):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        from studio.gui.qt_compare_view import CompareView
        from studio.gui.qt_export_panel import ExportPanel
        from studio.gui.qt_run_panel import RunPanel

        self.window = window
        self.runner = JobRunner(self)
        self.run_panel = RunPanel()
        self.compare = CompareView()
        self.export_panel = ExportPanel()
        self.result: Any = None          # the last RunResult
        self.baseline: Any = None        # the uncompressed module, once a compressed one is kept
        self._job = ""
        self._cancelled = False
        self.docks = [self._dock("Run", "runDock", self.run_panel), self._dock("Compare", "compareDock", self.compare),
                      self._dock("Export", "exportDock", self._scrolling(self.export_panel))]
        window.tabifyDockWidget(self.docks[0], self.docks[1])
        window.tabifyDockWidget(self.docks[1], self.docks[2])
        for dock in self.docks:
            dock.hide()
        self.run_action = self._action("&Run plan", self.show_run, "F6", "run")
        self.export_action = self._action("E&xport…", self.show_export, "Ctrl+Shift+X", "export")
        self.run_panel.startRequested.connect(self.start_run)
        self.run_panel.cancelRequested.connect(self.cancel)
        self.run_panel.findLrRequested.connect(self.find_lr)
        self.lr_dialog: Any = None
        self.lr_test_steps = 100  # steps of the learning-rate range test
        self.compare.keepRequested.connect(self.keep_result)
        self.compare.saveRequested.connect(self.save_result)
        self.compare.discardRequested.connect(self.discard_result)
        self.export_panel.exportRequested.connect(self.start_export)
        self.runner.event.connect(self._on_event)
        self.runner.failed.connect(self._on_failed)
        self.runner.busyChanged.connect(self._on_busy)

    def _dock(self, title: str, name: str, widget: Any) -> QDockWidget:
        dock = QDockWidget(title, self.window)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, dock)
        return dock

    @staticmethod
    def _scrolling(widget: Any) -> QScrollArea:
        """The export form and its tables are tall; scrolled, they don't squeeze the tree."""
        area = QScrollArea()
        area.setWidget(widget)
        area.setWidgetResizable(True)
        area.setFrameShape(QScrollArea.Shape.NoFrame)
        return area

    def _action(self, text: str, slot: Any, shortcut: str, icon_name: str) -> QAction:
        action = QAction(icon(icon_name), text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(lambda _c=False: slot())
        return action

    # --- lifecycle -----------------------------------------------------------------------
    def model_changed(self) -> None:
        """A different model: stop what runs for the old one and forget its results."""
        self.runner.cancel()
        self.discard_result()
        settings = self.window.plan.document.plan.settings
        if settings:
            self.run_panel.load_settings(settings)
        if self.window.opened is not None:
            from studio.core.pipelines.finetune import model_family

            defaults = model_family(self.window.opened.loaded.module)
            self.run_panel.settings_box.set_auto_hint(f"auto: {defaults.lr:g}, {defaults.schedule} "
                                                      f"({defaults.family})")
        if not any(dock.isVisible() for dock in self.docks) and self.window.height() >= TALL_WINDOW:
            self.show_run()  # ready below the tree; its first layout and paint happen now, not when a run starts
            # the tree keeps most of the height; the charts stay readable
            self.window.resizeDocks([self.docks[0]], [max(280, int(self.window.height() * 0.36))],
                                    Qt.Orientation.Vertical)

    def shutdown(self) -> None:
        self.runner.shutdown()

    def show_run(self) -> None:
        self.docks[0].show()
        self.docks[0].raise_()

    def show_export(self) -> None:
        self.docks[2].show()
        self.docks[2].raise_()

    # --- runs ----------------------------------------------------------------------------
    def start_run(self) -> None:
        opened = self.window.opened
        if opened is None or self.runner.busy:
            return
        settings = self.run_panel.settings_dict()
        plan = replace(self.window.plan.document.plan,
                       settings={**self.window.plan.document.plan.settings, **settings})
        loaded = opened.loaded

        def job(token: CancelToken) -> Any:
            from studio.core.data.sources import open_dataset
            from studio.core.pipelines.finetune import FinetuneSettings
            from studio.core.pipelines.run import run

            dataset = open_dataset(settings["data"], loaded) if settings.get("data") else None
            return run(loaded, plan, dataset, FinetuneSettings.from_dict(settings.get("finetune")), token)

        self._job, self._cancelled = "run", False
        self.run_panel.reset()
        self.run_panel.set_running(True)
        self.show_run()
        self.window.statusBar().showMessage("Running the plan…")
        self.runner.start(job)

    def find_lr(self) -> None:
        """The learning-rate range test on the compressed plan, its curve in a dialog."""
        opened = self.window.opened
        if opened is None or self.runner.busy:
            return
        settings = self.run_panel.settings_dict()
        if not settings.get("data"):
            self.window.show_error("Choose the data to train on first (e.g. sample or digits).", "Find learning rate")
            return
        plan, loaded, steps = self.window.plan.document.plan, opened.loaded, self.lr_test_steps

        def job(token: CancelToken) -> Any:
            from studio.core.data.sources import open_dataset
            from studio.core.pipelines.finetune import FinetuneSettings
            from studio.core.pipelines.lr_finder import find_lr

            dataset = open_dataset(settings["data"], loaded)
            return find_lr(loaded, plan, dataset, FinetuneSettings.from_dict(settings.get("finetune")), token,
                           steps=steps)

        if self.lr_dialog is None:
            from studio.gui.qt_lr_finder import LrFinderDialog

            self.lr_dialog = LrFinderDialog(self.window)
            self.lr_dialog.useLr.connect(self.run_panel.settings_box.set_lr)
            self.lr_dialog.cancelRequested.connect(self.cancel)
        self._job, self._cancelled = "find-lr", False
        self.lr_dialog.start()
        self.lr_dialog.show()
        self.run_panel.set_running(True)
        self.runner.start(job)

    def cancel(self) -> None:
        if self.runner.busy:
            self._cancelled = True
            self.runner.cancel()

    def keep_result(self) -> None:
        """The compressed model becomes the current model (its plan starts empty)."""
        if self.result is None or self.window.opened is None:
            return
        original = self.window.opened.loaded
        self.baseline = self.baseline if self.baseline is not None else original.module
        kept = replace(original, module=self.result.model, name=f"{original.name.removeprefix('sample:')} (compressed)", kind="compressed",
                       extras={**original.extras, "run_report": self.result.report})
        self.window.show_loaded(kept)

    def save_result(self, folder: str | None = None) -> None:
        if self.result is None:
            return
        if folder is None:
            folder, _ = QFileDialog.getSaveFileName(self.window, "Save compressed model (a folder)", "compressed-model")
        if not folder:
            return
        saved = replace(self.result.compression, compressed=self.result.model, report=self.result.report)

        def job(_token: CancelToken) -> Any:
            from studio.core.pipelines.compressed_dir import save_compressed

            yield Finished(save_compressed(saved, folder, force=False))

        self._job = "save"
        self.runner.start(job)

    def discard_result(self) -> None:
        self.result = None
        self.compare.set_report(None)

    # --- exports -------------------------------------------------------------------------
    def start_export(self, request: Any) -> None:
        opened = self.window.opened
        if opened is None or self.runner.busy:
            return
        loaded, baseline = opened.loaded, self.baseline
        spec = self.export_panel.data_spec() or ("sample" if loaded.extras.get("data") else None)

        def job(token: CancelToken) -> Any:
            from studio.core.data.sources import open_dataset
            from studio.core.pipelines.export import export

            dataset = open_dataset(spec, loaded) if spec else None
            return export(loaded, request, dataset, baseline=baseline, cancel=token)

        self._job = "export"
        self.export_panel.set_busy(True)
        self.runner.start(job)

    # --- job events ----------------------------------------------------------------------
    def _on_event(self, event: object) -> None:
        if self._job == "run":
            self.run_panel.handle_event(event)
            if isinstance(event, Finished):
                self.result = event.result
                self.compare.set_report(event.result.report)
                self.docks[1].show()
                self.docks[1].raise_()
                self.window.statusBar().showMessage("Run finished: compare the models below")
        elif self._job == "export":
            self.export_panel.handle_event(event)
            if isinstance(event, Finished):
                self.window.statusBar().showMessage(f"Exported {event.result.path}")
        elif self._job == "find-lr":
            self.lr_dialog.handle_event(event)
        elif self._job == "save" and isinstance(event, Finished):
            self.window.statusBar().showMessage(f"Saved the compressed model to {event.result}")

    def _on_failed(self, message: str, _untrusted: bool) -> None:
        title = {"run": "Run failed", "export": "Export failed", "save": "Could not save",
                 "find-lr": "Learning-rate test failed"}.get(self._job, "Error")
        if self._job == "export":
            self.export_panel.show_error(message)
        if self._job == "find-lr":
            self.lr_dialog.stopped(message)
        if self._job == "run":
            self.run_panel.failed(message)
        self.window.statusBar().showMessage(title)
        self.window.show_error(message, title)

    def _on_busy(self, busy: bool) -> None:
        """Every end of a job (done, failed, cancelled, shut down) passes here once."""
        if busy:
            return
        self.window.plan.refresh()  # the projection skips coupled layers while a job runs
        if self._job == "run":
            if self._cancelled:
                self.run_panel.handle_event(RunCancelled("run", "cancelled; the original model is unchanged"))
                self._cancelled = False
            self.run_panel.set_running(False)
        elif self._job == "export":
            self.export_panel.set_busy(False)
        elif self._job == "find-lr":
            if self._cancelled:
                self.lr_dialog.stopped("Cancelled.")
                self._cancelled = False
            self.run_panel.set_running(False)
