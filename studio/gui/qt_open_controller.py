"""Opening models in the window: open, reload, reinspect with another input spec, show a kept
result, trust prompts and recent files. It owns the `CurrentModel` the other controllers read.

Every open is a job on the window's one `JobRunner`; while another job runs, the user is asked
to cancel it first. The model is shown when its job has ended, so nothing else runs on it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from studio.core.base.events import Finished, StageStarted
from studio.gui.qt_resources import add_recent_source
from studio.gui.qt_worker import Job, JobRunner, ask_to_cancel

if TYPE_CHECKING:
    from studio.core.base.cancel import CancelToken
    from studio.core.model.input_spec import InputSpec
    from studio.core.model.loaded_model import LoadedModel
    from studio.core.model.loaders import LoadRequest
    from studio.core.pipelines.opening import OpenedModel

TRUST_TITLES = {"trust": "Untrusted code", "trust_remote_code": "Remote code"}
FAILED_TITLES = {"open": "Could not open model", "reinspect": "Could not inspect model",
                 "loaded": "Could not inspect model"}


def make_request(source: str, weights: str | None = None) -> LoadRequest:
    from studio.core.model.loaders import LoadRequest  # torch-free, but kept off the import path

    return LoadRequest(source=source, weights=weights)


class CurrentModel:
    """The model the window shows, read by every controller; only `OpenController` sets it."""

    def __init__(self) -> None:
        self._opened: OpenedModel | None = None
        self._request: LoadRequest | None = None
        self._in_memory = False  # a kept result: no request can open it again

    @property
    def opened(self) -> OpenedModel | None:
        return self._opened

    @property
    def request(self) -> LoadRequest | None:
        """What Reload opens again (a kept result keeps the request of the model it came from)."""
        return self._request

    @property
    def in_memory(self) -> bool:
        """A kept compression result: `request` opens the model it came from, not this one."""
        return self._in_memory

    @property
    def loaded(self) -> LoadedModel | None:
        return self._opened.loaded if self._opened is not None else None

    def spec(self) -> dict[str, object]:
        """The plain-data half of a job's spec: how another process could open this model."""
        loaded = self.loaded
        return {"request": None if self._in_memory else self._request,
                "input_spec": str(loaded.input_spec) if loaded is not None else ""}


class OpenController(QObject):
    """Opens models on the job runner and announces them; errors and trust questions as dialogs."""

    shown = Signal(object, str)  # OpenedModel, kind: "open" (a new model) | "loaded" (a kept result) | "reinspect"
    failed = Signal(str)
    stageChanged = Signal(str)  # "Loading …" lines for the status bar

    def __init__(self, runner: JobRunner, current: CurrentModel, status: Callable[..., None],
                 errors: Callable[[str, str], None], parent: QWidget) -> None:
        super().__init__(parent)
        self.runner, self.current = runner, current
        self._status, self._errors, self._parent = status, errors, parent
        self.last_trust_dialog: QMessageBox | None = None

    # --- starting ----------------------------------------------------------------------
    def open_source(self, request: LoadRequest) -> None:
        """Load and inspect `request`; the current model stays until it succeeds."""
        if not ask_to_cancel(self.runner, self._parent, f"open {request.source}"):
            return

        def job(token: CancelToken) -> Any:
            from studio.core.pipelines.opening import open_model  # imports torch: worker thread only

            return open_model(request, token)

        self._status(f"Loading {request.source}…")
        self._start(Job("open", f"loading {request.source}", job, {"request": request}), request)

    def reload(self) -> None:
        if self.current.request is not None:
            self.open_source(self.current.request)

    def reinspect(self, spec: InputSpec | None) -> None:
        """Inspect the loaded model again with `spec` (no reload); failure keeps the old tree."""
        loaded = self.current.loaded
        if loaded is None or spec is None or not ask_to_cancel(self.runner, self._parent, "inspect the model again"):
            return

        def job(token: CancelToken) -> Any:
            from studio.core.pipelines.opening import reinspect

            return reinspect(loaded, spec, token)

        self._start(Job("reinspect", "the inspection", job, {**self.current.spec(), "input_spec": str(spec)}), spec)

    def show_loaded(self, loaded: LoadedModel) -> None:
        """Show an in-memory model (a kept compression result); it is inspected on the worker."""
        if not ask_to_cancel(self.runner, self._parent, "show the kept model"):
            return

        def job(token: CancelToken) -> Any:
            from studio.core.pipelines.opening import reinspect

            return reinspect(loaded, loaded.input_spec, token)

        self._start(Job("loaded", "inspecting the kept model", job), loaded)

    def open_dialog(self) -> None:
        from studio.gui.qt_open_dialog import OpenModelDialog

        dialog = OpenModelDialog(self._parent)
        dialog.accepted.connect(lambda: self.open_source(dialog.request()))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()

    def edit_input_spec(self) -> None:
        loaded = self.current.loaded
        if loaded is None:
            return
        from studio.gui.qt_input_spec_dialog import InputSpecDialog

        dialog = InputSpecDialog(str(loaded.input_spec), self._parent)
        dialog.accepted.connect(lambda: self.reinspect(dialog.spec()))
        dialog.finished.connect(dialog.deleteLater)
        dialog.open()

    def open_paths(self, paths: list[str]) -> bool:
        """A drop: open the first local file/folder; a .py asks for the factory name."""
        if not paths:
            return False
        path = paths[0]
        if path.endswith(".py"):
            from studio.gui.qt_open_dialog import OpenModelDialog

            dialog = OpenModelDialog(self._parent)
            dialog.preset_factory(path)
            dialog.accepted.connect(lambda: self.open_source(dialog.request()))
            dialog.finished.connect(dialog.deleteLater)
            dialog.open()
        else:
            self.open_source(make_request(path))
        return True

    # --- the job -----------------------------------------------------------------------
    def _start(self, job: Job, payload: Any) -> None:
        outcome: dict[str, Any] = {}
        handle = self.runner.start(job)
        handle.event.connect(lambda event: self._on_event(event, outcome))
        handle.failed.connect(lambda message, option: outcome.update(error=(message, option)))
        handle.ended.connect(lambda result: self._on_ended(job.kind, payload, result, outcome))

    def _on_event(self, event: object, outcome: dict[str, Any]) -> None:
        if isinstance(event, StageStarted):
            verb = "Loading" if event.name == "load" else "Inspecting with" if event.name == "inspect" else event.name
            self._status(f"{verb} {event.detail}…")
        elif isinstance(event, Finished):
            outcome["opened"] = event.result

    def _on_ended(self, kind: str, payload: Any, result: str, outcome: dict[str, Any]) -> None:
        """Shown only once the job has ended: the worker no longer touches the model."""
        if result == "done" and "opened" in outcome:
            self._show(kind, payload, outcome["opened"])
        elif result == "failed" and "error" in outcome:
            message, option = outcome["error"]
            self._status("Could not open the model" if kind == "open" else "Inspection failed")
            if option and kind == "open":
                self._ask_trust(payload, message, option)
            else:
                self._errors(message, FAILED_TITLES.get(kind, "Error"))
            self.failed.emit(message)

    def _show(self, kind: str, payload: Any, opened: OpenedModel) -> None:
        request = payload if kind == "open" else self.current.request
        current = self.current
        current._opened, current._request = opened, request
        current._in_memory = kind == "loaded" or (kind == "reinspect" and current._in_memory)
        if kind == "open":
            add_recent_source(payload.source, payload.weights)
        self.shown.emit(opened, kind)
        seconds = opened.load_seconds + opened.inspect_seconds
        verb = "Loaded" if kind == "open" else f"Inspected with {opened.tree.input_spec}"
        self._status(f"{verb} in {seconds:.2f} s")

    def _ask_trust(self, request: LoadRequest, message: str, option: str) -> None:
        """Trust is asked each time, never remembered: the question is the loader's own reason."""
        question = f"{message}\n\nLoad it only if you trust its source. Load anyway?"
        box = QMessageBox(QMessageBox.Icon.Question, TRUST_TITLES.get(option, "Untrusted code"), question,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self._parent)
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


__all__ = ["CurrentModel", "OpenController", "make_request"]
