"""Runs, the learning-rate test, the compare view and exports. Every job goes through the
window's one `JobRunner` (another job running? the user is asked to cancel it first); each
job's events reach only its own panel, on the main thread."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QScrollArea, QWidget

from studio.core.base.events import Finished, RunCancelled
from studio.gui.qt_gui_priority import gui_priority
from studio.gui.qt_job_docks import raise_dock
from studio.gui.qt_resources import icon
from studio.gui import qt_process_worker as process
from studio.gui.qt_worker import Job, JobHandle, JobRunner, ask_to_cancel

if TYPE_CHECKING:
    from studio.core.base.cancel import CancelToken
    from studio.gui.qt_open_controller import CurrentModel
    from studio.gui.qt_plan_document import PlanDocument

FALLBACK_CANCEL = "cancelled; the original model is unchanged"  # when the job ended before its pipeline said more
FAILED_TITLES = {"run": "Run failed", "export": "Export failed", "save": "Could not save",
                 "find-lr": "Learning-rate test failed"}


class RunController(QObject):
    """The Run, Compare and Export docks (created here, placed by the window)."""

    runStarted = Signal()  # a run of the plan begins (the compare view may show a prediction)
    keepRequested = Signal(object)  # LoadedModel: the compressed model should become the current model

    def __init__(self, runner: JobRunner, current: CurrentModel, document: PlanDocument,
                 status: Callable[..., None], errors: Callable[[str, str], None], parent: QWidget) -> None:
        super().__init__(parent)
        from studio.gui.qt_compare_view import CompareView
        from studio.gui.qt_export_panel import ExportPanel
        from studio.gui.qt_run_panel import RunPanel

        self.runner, self.current, self.document = runner, current, document
        self._status, self._errors, self._parent = status, errors, parent
        self.run_panel = RunPanel()
        self.compare = CompareView()
        self.export_panel = ExportPanel()
        self.result: Any = None          # the last RunResult
        self.baseline: Any = None        # the uncompressed module, once a compressed one is kept
        self._job = ""                   # the kind of our last job ("run", "export", ...)
        self._handle: JobHandle | None = None
        self.docks = [self._dock("Run", "runDock", self.run_panel), self._dock("Compare", "compareDock", self.compare),
                      self._dock("Export", "exportDock", self._scrolling(self.export_panel))]
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

    @staticmethod
    def _dock(title: str, name: str, widget: QWidget) -> QDockWidget:
        dock = QDockWidget(title)
        dock.setObjectName(name)
        dock.setWidget(widget)
        return dock

    @staticmethod
    def _scrolling(widget: QWidget) -> QScrollArea:
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
        """A different model: forget the old one's results; its plan's run settings fill the panel."""
        self.discard_result()
        gui_priority().thaw()  # the old model's cycles are collected with the next full collection
        process.warm_up()  # the job worker process imports torch while the user reads the tree
        settings = self.document.plan.settings
        if settings:
            self.run_panel.load_settings(settings)
        if self.current.opened is not None:
            from studio.core.pipelines.finetune import model_family

            self.run_panel.settings_box.set_own_data(bool(self.current.opened.loaded.extras.get("data")))

            defaults = model_family(self.current.opened.loaded.module)
            self.run_panel.settings_box.set_auto_hint(f"auto: {defaults.lr:g}, {defaults.schedule} "
                                                      f"({defaults.family})")

    def shutdown(self) -> None:
        self.runner.shutdown()

    def show_run(self) -> None:
        raise_dock(self.docks[0])  # its tab, not QDockWidget.raise_: that repaints the whole window

    def show_export(self) -> None:
        raise_dock(self.docks[2])

    def _start(self, kind: str, job: Job) -> None:
        self._job = kind
        said: list[RunCancelled] = []  # the pipeline's own cancel message, if it got to say it
        handle = self._handle = self.runner.start(job)
        handle.event.connect(lambda event: self._on_event(kind, event, said))
        handle.failed.connect(lambda message, _option: self._on_failed(kind, message))
        handle.ended.connect(lambda outcome: self._on_ended(kind, outcome, bool(said)))

    # --- runs ----------------------------------------------------------------------------
    def start_run(self) -> None:
        opened = self.current.opened
        if opened is None or not ask_to_cancel(self.runner, self._parent, "start a run"):
            return
        settings = self.run_panel.settings_dict()
        plan = replace(self.document.plan, settings={**self.document.plan.settings, **settings})
        loaded, tree = opened.loaded, opened.tree

        def job(token: CancelToken) -> Any:
            from studio.core.data.sources import open_dataset
            from studio.core.pipelines.finetune import FinetuneSettings
            from studio.core.pipelines.run import run

            dataset = open_dataset(settings["data"], loaded) if settings.get("data") else None
            return run(loaded, plan, dataset, FinetuneSettings.from_dict(settings.get("finetune")), token, tree=tree)

        self.run_panel.reset()
        self.run_panel.set_running(True)
        self.show_run()
        self._status("Running the plan…")
        self.runStarted.emit()
        self._start("run", Job("run", "the run", job, spec=process.run_spec(self.current, plan, settings)))

    def find_lr(self) -> None:
        """The learning-rate range test on the compressed plan, its curve in a dialog."""
        opened = self.current.opened
        if opened is None:
            return
        settings = self.run_panel.settings_dict()
        if not settings.get("data"):
            self._errors("Choose the data to train on first (e.g. sample or digits).", "Find learning rate")
            return
        if not ask_to_cancel(self.runner, self._parent, "find a learning rate"):
            return
        plan, loaded, steps = self.document.plan, opened.loaded, self.lr_test_steps

        def job(token: CancelToken) -> Any:
            from studio.core.data.sources import open_dataset
            from studio.core.pipelines.finetune import FinetuneSettings
            from studio.core.pipelines.lr_finder import find_lr

            dataset = open_dataset(settings["data"], loaded)
            return find_lr(loaded, plan, dataset, FinetuneSettings.from_dict(settings.get("finetune")), token,
                           steps=steps)

        if self.lr_dialog is None:
            from studio.gui.qt_lr_finder import LrFinderDialog

            self.lr_dialog = LrFinderDialog(self._parent)
            self.lr_dialog.useLr.connect(self.run_panel.settings_box.set_lr)
            self.lr_dialog.cancelRequested.connect(self.cancel)
        self.lr_dialog.start()
        self.lr_dialog.show()
        self.run_panel.set_running(True)
        self._start("find-lr", Job("find-lr", "the learning-rate test", job,
                                   spec=process.lr_spec(self.current, plan, settings, steps)))

    def cancel(self) -> None:
        """Cancel our job (the run, the learning-rate test or the export), not another's."""
        if self._handle is not None and not self._handle.outcome:
            self._handle.cancel()

    def keep_result(self) -> None:
        """The compressed model becomes the current model (its plan starts empty)."""
        if self.result is None or self.current.opened is None:
            return
        original = self.current.opened.loaded
        baseline = self.baseline if self.baseline is not None else original.module
        module, reopen = process.kept_model(self.result, original, self.current)  # a child's result: from its folder
        kept = replace(original, module=module, name=f"{original.name.removeprefix('sample:')} (compressed)", kind="compressed",
                       extras={**original.extras, **reopen, "report": self.result.report})
        self.baseline = baseline
        self.keepRequested.emit(kept)

    def save_result(self, folder: str | None = None) -> None:
        if self.result is None:
            return
        if folder is None:
            folder, _ = QFileDialog.getSaveFileName(self._parent, "Save compressed model (a folder)", "compressed-model")
        if not folder or not ask_to_cancel(self.runner, self._parent, "save the compressed model"):
            return
        saved = self.result

        def job(_token: CancelToken) -> Any:
            yield Finished(process.save_result(saved, folder))

        self._start("save", Job("save", "saving the compressed model", job))

    def discard_result(self) -> None:
        self.result = None
        self.compare.set_report(None)

    # --- exports -------------------------------------------------------------------------
    def start_export(self, request: Any) -> None:
        opened = self.current.opened
        if opened is None or not ask_to_cancel(self.runner, self._parent, "export the model"):
            return
        loaded, baseline = opened.loaded, self.baseline
        spec = self.export_panel.data_spec() or ("sample" if loaded.extras.get("data") else None)

        def job(token: CancelToken) -> Any:
            from studio.core.data.sources import open_dataset
            from studio.core.pipelines.export import export

            dataset = open_dataset(spec, loaded) if spec else None
            return export(loaded, request, dataset, baseline=baseline, cancel=token)

        self.export_panel.set_busy(True)
        self._start("export", Job("export", "the export", job,
                                  spec=process.export_spec(self.current, request, spec, baseline)))

    # --- job events ----------------------------------------------------------------------
    def _on_event(self, kind: str, event: object, said: list[RunCancelled]) -> None:
        if isinstance(event, RunCancelled):
            said.append(event)
        if kind == "run":
            self.run_panel.handle_event(event)
            if isinstance(event, Finished):
                self.result = event.result
                self.compare.set_report(event.result.report)
                raise_dock(self.docks[1])
                self._status("Run finished: compare the models below")
        elif kind == "export":
            self.export_panel.handle_event(event)
            if isinstance(event, Finished):
                self._status(f"Exported {event.result.path}")
        elif kind == "find-lr":
            if isinstance(event, RunCancelled):
                self.lr_dialog.stopped(event.detail[:1].upper() + event.detail[1:])
            else:
                self.lr_dialog.handle_event(event)
        elif kind == "save" and isinstance(event, Finished):
            self._status(f"Saved the compressed model to {event.result}")

    def _on_failed(self, kind: str, message: str) -> None:
        title = FAILED_TITLES.get(kind, "Error")
        if kind == "export":
            self.export_panel.show_error(message)
        if kind == "find-lr":
            self.lr_dialog.stopped(message)
        if kind == "run":
            self.run_panel.failed(message)
        self._status(title)
        self._errors(message, title)

    def _on_ended(self, kind: str, outcome: str, said: bool) -> None:
        """Every end of our job (done, failed, cancelled, shut down) passes here once."""
        cancelled = outcome == "cancelled" and not said
        if kind == "run":
            if cancelled:  # ended before the pipeline could say what it had done
                self.run_panel.handle_event(RunCancelled("run", FALLBACK_CANCEL))
            self.run_panel.set_running(False)
        elif kind == "export":
            self.export_panel.set_busy(False)
        elif kind == "find-lr":
            if cancelled:
                self.lr_dialog.stopped("Cancelled.")
            self.run_panel.set_running(False)
