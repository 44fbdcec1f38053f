"""`run_gui`: the screenshot mode end to end, in a fresh interpreter like `studio gui`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run_gui(args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT),
               XDG_CONFIG_HOME=tempfile.mkdtemp(prefix="studio-config-"))  # never the developer's settings
    code = f"from studio.gui.qt_app import run_gui; raise SystemExit(run_gui({args}))"
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, timeout=180,
                          capture_output=True, text=True)


def test_screenshot_of_digits(tmp_path):
    png = tmp_path / "shot.png"
    result = _run_gui(f"'sample:digits-cnn', screenshot={str(png)!r}")
    assert result.returncode == 0, result.stderr
    assert png.stat().st_size > 10_000
    assert result.stderr.strip() == ""


def test_screenshot_with_a_bad_source_fails_cleanly(tmp_path):
    png = tmp_path / "shot.png"
    result = _run_gui(f"{str(tmp_path / 'missing.pt')!r}, screenshot={str(png)!r}")
    assert result.returncode == 2
    assert "no such file" in result.stderr
    assert not png.exists()


def test_excepthook_shows_a_dialog_instead_of_exiting(qtbot, capsys):
    from PySide6.QtWidgets import QMessageBox, QWidget

    from studio.gui.qt_app import install_excepthook

    parent = QWidget()
    qtbot.addWidget(parent)
    previous = sys.excepthook
    try:
        install_excepthook(parent)
        try:
            raise RuntimeError("slot exploded")
        except RuntimeError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
    finally:
        sys.excepthook = previous
    box = parent.findChild(QMessageBox, "crashDialog")
    assert box is not None and "slot exploded" in box.text()
    assert "slot exploded" in capsys.readouterr().err
    box.close()
