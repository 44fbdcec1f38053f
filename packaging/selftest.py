"""`compression-studio --self-test OUT_DIR`: the built app checks itself the way a user would use it.

It opens the window offscreen (the welcome screen, then the digits sample), runs the shipped recipe
with one fine-tuning epoch and exports the kept result to int8 ONNX (dynamic) — both jobs through
the window's job runner, so in the frozen app they run in the forkserver child process exactly as
for a user — and saves a screenshot of each step. It fails (exit 1, one line why) when a job fails,
when a job ran in-process instead of in the child, or when discovery found no techniques (the
frozen package walk). On success it prints one JSON object of what it measured.

    python packaging/launcher.py --self-test out/selftest     # the same check from a source tree
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

SIZE = (1366, 768)
JOB_TIMEOUT_S = 900.0  # a busy 2-core machine: the run took ~70 s


def _process_age() -> float | None:
    """Seconds since this process started (the launcher's exec), from STUDIO_T0 or /proc."""
    if os.environ.get("STUDIO_T0"):
        return time.time() - float(os.environ["STUDIO_T0"])
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        return time.clock_gettime(time.CLOCK_BOOTTIME) - int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError, IndexError):
        return None


class SelfTestFailed(Exception):
    pass


def _wait(app: Any, predicate: Callable[[], bool], what: str, timeout_s: float = JOB_TIMEOUT_S) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            raise SelfTestFailed(f"timed out after {timeout_s:.0f} s waiting for {what}")
        app.processEvents()
        time.sleep(0.01)
    return time.monotonic() - start


def _settle(app: Any, seconds: float = 0.4) -> None:
    until = time.monotonic() + seconds
    _wait(app, lambda: time.monotonic() > until, "the layout")


def _job_workers() -> list[int]:
    """Pids of this process's live job worker children (the runner starts them by name)."""
    return [p.pid for p in multiprocessing.active_children() if p.name == "studio-job-worker" and p.pid]


def run(out: Path) -> dict[str, Any]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    out.mkdir(parents=True, exist_ok=True)
    from PySide6.QtCore import QSettings

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)  # throw-away settings: no recent files, no autosaves
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tempfile.mkdtemp())

    from studio.gui.qt_app import _application
    from studio.gui.qt_main_window import MainWindow
    from studio.gui.qt_process_worker import ProcessWorker

    app = _application()
    window = MainWindow()
    window.resize(*SIZE)
    window.show()
    app.processEvents()
    figures: dict[str, Any] = {"frozen": bool(getattr(sys, "frozen", False)), "first_window_s": _process_age()}
    _settle(app)
    window.grab().save(str(out / "welcome.png"))
    failures: list[str] = []
    window.runner.failed.connect(lambda message, _option: failures.append(message))

    def job(kind: str, start: Callable[[], None], done: Callable[[], bool]) -> float:
        before = len(failures)
        start()
        seconds = _wait(app, lambda: len(failures) > before or (done() and not window.runner.busy), f"the {kind}")
        if len(failures) > before:
            raise SelfTestFailed(f"the {kind} failed: {failures[-1]}")
        return round(seconds, 1)

    from studio.core.base.resources import resource
    from studio.core.model.loaders import LoadRequest
    from studio.core.plan import CompressionPlan
    from studio.core.techniques import all_techniques
    from studio.core.techniques.lowrank_methods import all_methods

    figures["techniques"] = sorted(all_techniques())
    figures["lowrank_methods"] = sorted(all_methods())
    if not {"prune", "quantize", "lowrank"} <= set(figures["techniques"]) or not figures["lowrank_methods"]:
        raise SelfTestFailed(f"technique discovery found only {figures['techniques']} / {figures['lowrank_methods']}")

    figures["open_s"] = job("open", lambda: window.open_source(LoadRequest("sample:digits-cnn")),
                            lambda: window.opened is not None)
    window.plan.document.set_plan(CompressionPlan.load(resource("recipes", "digits-prune-quantize.yaml")))
    panel = window.run.run_panel
    panel.data_combo.setEditText("digits")
    panel.epochs.setValue(1)
    figures["in_process_backend"] = not ProcessWorker.enabled
    figures["run_s"] = job("run", panel.run_button.click, lambda: window.run.result is not None)
    workers = _job_workers()
    if ProcessWorker.enabled and (not workers or os.getpid() in workers or not hasattr(window.run.result, "folder")):
        raise SelfTestFailed(f"the run did not come back from a job worker process (workers {workers})")
    figures["job_worker_pids"], figures["window_pid"] = workers, os.getpid()
    report = window.run.result.report
    figures["accuracy_before_after"] = [report.before.accuracy, report.after.accuracy]
    figures["bytes_before_after"] = [report.before.bytes, report.after.bytes]
    window.run.show_run()
    _settle(app)
    window.grab().save(str(out / "run.png"))
    window.run.docks[1].raise_()
    _settle(app)
    window.grab().save(str(out / "compare.png"))

    window.run.keep_result()
    _wait(app, lambda: "(compressed)" in window.windowTitle() and not window.runner.busy, "the kept model")
    export = window.run.export_panel
    export.set_format("onnx")
    export.set_precision("int8")
    export.int8_combo.setCurrentIndex(export.int8_combo.findData("dynamic"))  # one file, no candidate search
    target = out / "digits-small.onnx"
    target.unlink(missing_ok=True)
    export.set_output(target)
    window.run.show_export()
    figures["export_s"] = job("export", export.request_export, lambda: target.is_file())
    figures["export_bytes"] = target.stat().st_size
    if _job_workers() != workers:
        figures["job_worker_pids_after_export"] = _job_workers()  # a replaced worker is worth seeing
    window.run.docks[2].widget().ensureWidgetVisible(export.results_table)  # the verification, not the form
    _settle(app)
    window.grab().save(str(out / "export.png"))
    window.close()
    app.processEvents()
    return figures


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "selftest-out")
    try:
        figures = run(out)
    except SelfTestFailed as exc:
        print(f"self-test: FAILED: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"self_test": "ok", **figures, "screenshots": str(out)}))
    return 0
