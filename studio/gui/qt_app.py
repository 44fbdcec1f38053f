"""`studio gui`: application setup, crash-safe exception hook and the screenshot mode.

The window is shown before any model (and so torch) is loaded.
"""

from __future__ import annotations

import sys
import traceback
from types import TracebackType
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEventLoop, QMessageLogContext, Qt, QtMsgType, QTimer, qInstallMessageHandler
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from studio.gui.qt_resources import APPLICATION, ORGANIZATION, icon

if TYPE_CHECKING:
    from studio.core.model.input_spec import InputSpec
    from studio.core.model.loaders import LoadRequest

DEFAULT_SIZE = (1400, 860)
SETTLE_MS = 300


def install_excepthook(parent: QWidget) -> None:
    """Unexpected exceptions in slots show a dialog and go to stderr instead of killing the app."""

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        traceback.print_exception(kind, value, tb, file=sys.stderr)
        if issubclass(kind, KeyboardInterrupt):
            QApplication.quit()
            return
        box = QMessageBox(QMessageBox.Icon.Critical, "Unexpected error",
                          f"{kind.__name__}: {value}\n\nThe window stays open; details were written to the console.",
                          QMessageBox.StandardButton.Ok, parent)
        box.setObjectName("crashDialog")
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    sys.excepthook = hook


def _quiet_offscreen(mode: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Headless screenshots: drop the offscreen plugin's size-hint notice, keep the rest."""
    if "propagateSizeHints" not in message:
        print(message, file=sys.stderr)


def _application() -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    if app.platformName() == "offscreen":
        qInstallMessageHandler(_quiet_offscreen)
    app.setApplicationName(APPLICATION)
    app.setOrganizationName(ORGANIZATION)
    app.setStyle("Fusion")
    app.setWindowIcon(icon("studio"))
    if app.property("studioTheme") is None:  # once per process: tests create many windows
        from studio.gui.qt_theme import apply_theme, follow_system

        apply_theme(app)
        follow_system(app)
    return app


def _as_request(source: Any, weights: str | None, trust: bool, input_spec: Any) -> LoadRequest | None:
    """Accepts a source string (with options) or a ready `LoadRequest` (the CLI passes one)."""
    if source is None:
        return None
    from studio.core.model.loaders import LoadRequest

    if isinstance(source, LoadRequest):
        return source
    spec = input_spec
    if isinstance(spec, str):
        from studio.core.model.input_spec import InputSpec

        spec = InputSpec.parse(spec)
    return LoadRequest(source=str(source), weights=weights, trust=trust, input_spec=spec)


def _save_screenshot(app: QApplication, window: Any, path: str) -> int:
    """Wait for the model (or the failure), let the layout settle, grab the window."""
    loop = QEventLoop()
    outcome: dict[str, str | None] = {}

    def shown() -> None:
        outcome["error"] = None
        loop.quit()

    def failed(message: str) -> None:
        outcome["error"] = message
        loop.quit()

    window.modelShown.connect(shown)
    window.loadFailed.connect(failed)
    if window.runner.busy:
        loop.exec()
    if outcome.get("error"):
        print(f"studio: error: {outcome['error']}", file=sys.stderr)
        window.close()
        return 2
    QTimer.singleShot(SETTLE_MS, loop.quit)
    loop.exec()
    app.processEvents()
    ok = window.grab().save(path)
    window.close()
    if not ok:
        print(f"studio: error: could not write {path}.", file=sys.stderr)
        return 2
    return 0


def run_gui(source: str | LoadRequest | None = None, *, weights: str | None = None, trust: bool = False,
            input_spec: str | InputSpec | None = None, screenshot: str | None = None) -> int:
    """Show the window (opening `source` if given); with `screenshot`, save a PNG and exit."""
    from studio.core.base.logs import quiet_third_party_logs

    quiet_third_party_logs()
    from studio.gui.qt_platform_check import display_problem

    problem = display_problem()
    if problem:
        print(f"studio: error: {problem}", file=sys.stderr)
        return 2
    app = _application()
    from studio.gui.qt_main_window import MainWindow

    window = MainWindow()
    install_excepthook(window)
    window.resize(*DEFAULT_SIZE)
    window.show()
    request = _as_request(source, weights, trust, input_spec)
    if request is not None:
        window.open_source(request)
    if screenshot:
        return _save_screenshot(app, window, screenshot)
    return app.exec()
