"""Help ▸ About: what the studio is and the versions of what it runs on, for bug reports.
Versions come from package metadata, so nothing heavy is imported to show them."""

from __future__ import annotations

import platform
from html import escape
from importlib import metadata

from PySide6.QtWidgets import QMessageBox, QWidget

from studio.gui.qt_resources import APPLICATION

PACKAGES = ("compression-studio", "torch", "transformers", "onnx", "onnxruntime", "litert-torch", "ai-edge-litert",
            "torch-pruning", "tensorly", "PySide6", "pyqtgraph")


def versions() -> list[tuple[str, str]]:
    rows = [("Python", platform.python_version()), ("Platform", platform.platform(terse=True))]
    for name in PACKAGES:
        if name == "PySide6":  # its metadata is PySide6-Essentials' or PySide6's, depending on the install
            import PySide6

            rows.append((name, PySide6.__version__))
            continue
        try:
            rows.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            rows.append((name, "not installed"))
    return rows


def about_html() -> str:
    table = "".join(f"<tr><td style='padding-right:14px'>{escape(name)}</td><td>{escape(version)}</td></tr>"
                    for name, version in versions())
    return (f"<h3>{APPLICATION}</h3><p>Inspect, compress and export neural networks locally.<br>"
            "Nothing leaves this machine: models and data load offline.</p>"
            f"<table cellspacing='0' cellpadding='1'>{table}</table>")


def show_about(parent: QWidget) -> QMessageBox:
    box = QMessageBox(QMessageBox.Icon.NoIcon, f"About {APPLICATION}", about_html(), QMessageBox.StandardButton.Ok,
                      parent)
    box.setObjectName("aboutDialog")
    box.open()
    return box
