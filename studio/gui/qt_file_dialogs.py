"""File dialogs that remember where the user last went, per kind of file (models, data, recipes,
exports, results): the next dialog of that kind starts there, across sessions."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from studio.gui.qt_resources import settings

KEY = "folders/{kind}"


def last_folder(kind: str) -> str:
    folder = str(settings().value(KEY.format(kind=kind), "") or "")
    return folder if folder and Path(folder).is_dir() else ""


def remember(kind: str, path: str) -> None:
    """The folder of a chosen file (or the chosen folder itself)."""
    chosen = Path(path)
    folder = chosen if chosen.is_dir() else chosen.parent
    settings().setValue(KEY.format(kind=kind), str(folder.resolve()))


def _start(kind: str, suggested: str) -> str:
    """A suggested absolute path wins; a bare name goes into the remembered folder."""
    if suggested and Path(suggested).expanduser().is_absolute():
        return suggested
    folder = last_folder(kind)
    return str(Path(folder) / suggested) if folder and suggested else folder or suggested


def open_file(parent: QWidget | None, caption: str, kind: str, filters: str = "", suggested: str = "") -> str | None:
    path, _ = QFileDialog.getOpenFileName(parent, caption, _start(kind, suggested), filters)
    if path:
        remember(kind, path)
    return path or None


def save_file(parent: QWidget | None, caption: str, kind: str, suggested: str, filters: str = "") -> str | None:
    path, _ = QFileDialog.getSaveFileName(parent, caption, _start(kind, suggested), filters)
    if path:
        remember(kind, path)
    return path or None


def open_folder(parent: QWidget | None, caption: str, kind: str, suggested: str = "") -> str | None:
    path = QFileDialog.getExistingDirectory(parent, caption, _start(kind, suggested))
    if path:
        remember(kind, path)
    return path or None
