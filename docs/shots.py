"""What the README's screenshot scripts share: throw-away settings, the application, waiting on
the event loop (the window's jobs finish in the background) and saving a grab into docs/.

Every screenshot is taken at a laptop's 1366×768 (`SIZE`), offscreen."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
SIZE = (1366, 768)


def application() -> Any:
    """The studio's QApplication with settings in a fresh temporary folder (recent files, plan
    autosaves and the saved dock layout of a real user never leak into a screenshot)."""
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    from studio.gui.qt_app import _application

    return _application()


def main_window() -> Any:
    """A shown main window at `SIZE`."""
    from studio.gui.qt_main_window import MainWindow

    window = MainWindow()
    window.resize(*SIZE)
    window.show()
    return window


def wait(predicate: Callable[[], bool], timeout_s: float = 1200) -> None:
    """Run the event loop until `predicate()` holds."""
    from PySide6.QtWidgets import QApplication

    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise SystemExit("screenshots: timed out")
        QApplication.processEvents()
        time.sleep(0.01)


def settle(seconds: float = 0.5) -> None:
    """Let layouts, throttled chart updates and repaints finish."""
    until = time.monotonic() + seconds
    wait(lambda: time.monotonic() > until)


def save(window: Any, name: str) -> None:
    settle()
    window.grab().save(str(ROOT / "docs" / name))
    print("wrote", f"docs/{name}")
