"""Screenshots for the README at a laptop's 1366×768, taken from the real window (offscreen): a
finished run of the digits sample's shipped recipe with KD fine-tuning, the compare view, and a
verified int8 ONNX export.

    QT_QPA_PLATFORM=offscreen python docs/make_screenshots.py      # or: make screenshots
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from shots import application, main_window, save, wait


def main() -> None:
    application()
    from studio.core.base.resources import resource
    from studio.core.model.loaders import LoadRequest
    from studio.core.plan import CompressionPlan

    window = main_window()
    window.open_source(LoadRequest("sample:digits-cnn"))
    wait(lambda: window.opened is not None and not window.runner.busy)
    window.plan.document.set_plan(CompressionPlan.load(resource("recipes", "digits-prune-quantize.yaml")))
    window.layers.view.expandAll()
    panel = window.run.run_panel
    panel.data_combo.setEditText("digits")
    panel.epochs.setValue(4)
    window.run.show_run()
    panel.run_button.click()
    wait(lambda: window.run.result is not None and not window.run.runner.busy)
    window.run.show_run()
    save(window, "screenshot-run.png")
    window.run.docks[1].raise_()
    save(window, "screenshot-compare.png")

    window.run.keep_result()
    wait(lambda: "(compressed)" in window.windowTitle() and not window.runner.busy)
    export = window.run.export_panel
    export.set_format("onnx")
    export.set_precision("int8")
    export.set_output(Path(tempfile.mkdtemp()) / "digits-small.onnx")
    window.run.show_export()
    export.request_export()
    wait(lambda: not window.run.runner.busy and window.run._job == "export")
    save(window, "screenshot-export.png")
    window.close()


if __name__ == "__main__":
    main()
