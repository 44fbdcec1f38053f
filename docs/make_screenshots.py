"""Screenshots for the README, taken from the real window (offscreen): the digits sample with
its shipped recipe marked in the tree, a finished run with KD fine-tuning, the compare view,
and a verified int8 ONNX export.

    QT_QPA_PLATFORM=offscreen python docs/make_screenshots.py      # or: make screenshots
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


def wait(app, predicate, timeout_s: float = 600) -> None:
    end = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > end:
            raise SystemExit("screenshots: timed out")
        app.processEvents()
        time.sleep(0.01)


def settle(app, seconds: float = 0.4) -> None:
    until = time.monotonic() + seconds
    wait(app, lambda: time.monotonic() > until)


def main() -> None:
    from studio.core.model.loaders import LoadRequest
    from studio.core.plan import CompressionPlan
    from studio.core.base.resources import resource
    from studio.gui.qt_app import _application
    from studio.gui.qt_main_window import MainWindow

    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)  # throw-away settings: recent files, plan autosaves
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())
    app = _application()
    window = MainWindow()
    window.resize(1500, 980)
    window.show()
    out = ROOT / "docs"
    window.open_source(LoadRequest("sample:digits-cnn"))
    wait(app, lambda: window.opened is not None and not window.runner.busy)
    window.plan.document.set_plan(CompressionPlan.load(resource("recipes", "digits-prune-quantize.yaml")))
    window.layers.view.expandAll()
    panel = window.run.run_panel
    panel.data_combo.setEditText("digits")
    panel.epochs.setValue(4)
    panel.run_button.click()
    wait(app, lambda: window.run.result is not None and not window.run.runner.busy)
    window.run.show_run()
    settle(app)
    window.grab().save(str(out / "screenshot-run.png"))
    window.run.docks[1].raise_()
    settle(app)
    window.grab().save(str(out / "screenshot-compare.png"))

    window.run.keep_result()
    wait(app, lambda: "(compressed)" in window.windowTitle() and not window.runner.busy)
    export = window.run.export_panel
    export.set_format("onnx")
    export.set_precision("int8")
    export.set_output(Path(tempfile.mkdtemp()) / "digits-small.onnx")
    window.run.show_export()
    export.request_export()
    wait(app, lambda: not window.run.runner.busy and window.run._job == "export")
    from PySide6.QtCore import Qt

    window.resizeDocks([window.run.docks[2]], [int(window.height() * 0.64)], Qt.Orientation.Vertical)
    settle(app)
    window.grab().save(str(out / "screenshot-export.png"))
    window.close()
    print("wrote", ", ".join(f"docs/screenshot-{n}.png" for n in ("run", "compare", "export")))


if __name__ == "__main__":
    main()
