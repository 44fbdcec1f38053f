"""GUI test setup: headless Qt, throw-away QSettings, shared sample trees."""

from __future__ import annotations

import gc
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

SLOW_FACTORY = '''
import time
from torch import nn


def SlowNet():
    time.sleep(3)
    return nn.Sequential(nn.Linear(4, 4))
'''


# The offscreen platform plugin warns whenever a shown window's size constraints
# change; it is an artefact of headless runs (xcb/cocoa/windows support it), not ours.
OFFSCREEN_NOISE = r"This plugin does not support propagateSizeHints"


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.qt_log_ignore(OFFSCREEN_NOISE))


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path_factory):
    """Recent files etc. go to a temporary INI file, never the developer's settings."""
    folder = tmp_path_factory.mktemp("settings")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    yield folder


@pytest.fixture(autouse=True)
def collect_on_main_thread():
    """Free the last test's widgets here, on the GUI thread, before a worker thread could."""
    yield
    gc.collect()


@pytest.fixture(autouse=True)
def no_unexpected_modal_question(monkeypatch):
    """A modal question nobody answers blocks an offscreen run until the hang watchdog; fail at once
    instead. A test that expects one patches QMessageBox.question itself (after this fixture)."""
    from PySide6.QtWidgets import QMessageBox

    def question(parent, title, text, *args):
        raise AssertionError(f"an unexpected modal question would block the offscreen run: {title!r}: {text!r}")

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))


@pytest.fixture(scope="session")
def digits_tree():
    from studio.core.model.inspection import inspect_model
    from studio.core.pipelines.opening import LoadRequest, load_model

    loaded = load_model(LoadRequest("sample:digits-cnn"))
    return inspect_model(loaded.module, loaded.input_spec)


@pytest.fixture
def show(qtbot):
    """show(widget, width, height): a widget registered with qtbot, sized, shown and exposed."""
    def shown(widget, width: int = 1000, height: int = 700):
        qtbot.addWidget(widget)
        widget.resize(width, height)
        widget.show()
        qtbot.waitExposed(widget)
        return widget

    return shown


@pytest.fixture(scope="session")
def digits_run_events() -> list[object]:
    """Every event of one real digits run (90 % unstructured, one epoch of KD), shared by the
    panels' tests."""
    from studio.core.data.sources import open_dataset
    from studio.core.pipelines.finetune import FinetuneSettings
    from studio.core.pipelines.opening import LoadRequest, load_model
    from studio.core.plan import CompressionPlan
    from studio.core.pipelines.run import run

    loaded = load_model(LoadRequest("sample:digits-cnn"))
    data = open_dataset("digits", loaded)
    plan = CompressionPlan.from_dict({"rules": [{"layers": "*", "prune": {"mode": "unstructured", "amount": 0.9}}]})
    return list(run(loaded, plan, data, FinetuneSettings(epochs=1, eval_interval=10)))


@pytest.fixture
def window(show):
    from studio.gui.qt_main_window import MainWindow

    win = show(MainWindow(), 1200, 800)
    yield win
    win.run.shutdown()
    win.runner.shutdown()


@pytest.fixture
def digits_window(qtbot, window):
    from studio.core.model.loaders import LoadRequest

    with qtbot.waitSignal(window.modelShown, timeout=60000):
        window.open_source(LoadRequest("sample:digits-cnn"))
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=10000)
    return window


@pytest.fixture
def slow_factory(tmp_path):
    path = tmp_path / "slow_model.py"
    path.write_text(SLOW_FACTORY)
    return path
