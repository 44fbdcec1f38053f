"""The README's sensitivity screenshot at a laptop's 1366×768, taken from the real window (offscreen): a finished
default sweep of the digits sample, two layers' curves, and a plan fitted to 30 % of the size.

    QT_QPA_PLATFORM=offscreen python docs/make_sensitivity_screenshot.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main() -> None:
    from PySide6.QtCore import QSettings, Qt

    from studio.core.model.loaders import LoadRequest
    from studio.gui.qt_app import _application
    from studio.gui.qt_main_window import MainWindow

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)  # throw-away settings
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    app = _application()

    def wait(predicate, timeout_s: float = 1200) -> None:
        end = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > end:
                raise SystemExit("screenshot: timed out")
            app.processEvents()
            time.sleep(0.01)

    window = MainWindow()
    window.resize(1366, 768)
    window.show()
    window.open_source(LoadRequest("sample:digits-cnn"))
    wait(lambda: window.opened is not None and not window.runner.busy)
    window.details.hide()
    sensitivity = window.sensitivity
    sensitivity.cache_dir = Path(os.environ.get("SENSITIVITY_CACHE") or tempfile.mkdtemp())
    sensitivity.show()
    window.resizeDocks([sensitivity.dock], [int(window.height() * 0.5)], Qt.Orientation.Vertical)
    panel = sensitivity.panel
    panel.data_combo.setEditText("digits")
    started = time.monotonic()
    panel.start_button.click()
    wait(lambda: sensitivity.result is not None and not window.run.runner.busy)
    print(f"sweep: {len(sensitivity.result.cells)} cells in {time.monotonic() - started:.1f} s")
    result = sensitivity.result
    means = {layer: sum(c.drop for c in result.row(layer) if c.ok) for layer in result.layers}
    view, heatmap = panel.heatmap.view, panel.heatmap
    for layer in (min(means, key=means.get), max(means, key=means.get)):
        index = heatmap.index_of(layer, result.settings[0].label)
        view.selectionModel().select(index, view.selectionModel().SelectionFlag.Select
                                     | view.selectionModel().SelectionFlag.Rows)
    panel.target_value.setText(f"{window.opened.tree.total_bytes * 0.3 / 1000:.0f}kB")
    panel.fit_button.click()
    wait(lambda: sensitivity.fitted is not None and not window.run.runner.busy)
    window.layers.view.expandAll()
    until = time.monotonic() + 0.5
    wait(lambda: time.monotonic() > until)
    window.grab().save(str(ROOT / "docs" / "screenshot-sensitivity.png"))


if __name__ == "__main__":
    main()
