"""The README's sensitivity screenshot at a laptop's 1366×768, taken from the real window (offscreen): a finished
default sweep of the digits sample, two layers' curves, and a plan fitted to 30 % of the size; light and dark.

    QT_QPA_PLATFORM=offscreen python docs/make_sensitivity_screenshot.py      # or: make screenshots
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from shots import application, main_window, save, wait


def main() -> None:
    app = application()
    from studio.core.model.loaders import LoadRequest
    from studio.gui.qt_theme import apply_theme

    window = main_window()
    window.open_source(LoadRequest("sample:digits-cnn"))
    wait(lambda: window.opened is not None and not window.runner.busy)
    window.details.hide()
    sensitivity = window.sensitivity
    sensitivity.cache_dir = Path(os.environ.get("SENSITIVITY_CACHE") or tempfile.mkdtemp())
    sensitivity.show()
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
    save(window, "screenshot-sensitivity.png")
    apply_theme(app, "dark")
    save(window, "screenshot-sensitivity-dark.png")
    apply_theme(app, "light")
    window.close()


if __name__ == "__main__":
    main()
