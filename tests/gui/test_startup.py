"""The window appears before torch loads: checked in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT),
               XDG_CONFIG_HOME=tempfile.mkdtemp(prefix="studio-config-"))  # never the developer's settings
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT, timeout=120)


def test_window_modules_do_not_import_torch():
    _run("import sys\n"
         "import studio.gui.qt_main_window, studio.gui.qt_app, studio.gui.qt_open_dialog\n"
         "heavy = [m for m in ('torch', 'transformers', 'studio.core.model.inspection', 'studio.core.pipelines.opening')"
         " if m in sys.modules]\n"
         "assert not heavy, heavy\n")


def test_showing_the_window_does_not_import_torch():
    _run("import sys\n"
         "from PySide6.QtWidgets import QApplication\n"
         "from studio.gui.qt_main_window import MainWindow\n"
         "app = QApplication([])\n"
         "w = MainWindow(); w.show(); app.processEvents()\n"
         "w.opening.open_dialog(); app.processEvents()\n"
         "assert 'torch' not in sys.modules\n"
         "w.close()\n")
