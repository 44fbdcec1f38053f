"""The window end to end on real models: open, sort, filter, errors, trust, reinspect, drop, close."""

from __future__ import annotations

import os
import time

import pytest
from PySide6.QtCore import QMimeData, QModelIndex, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QMessageBox

from studio.core.model.input_spec import InputSpec
from studio.core.model.loaders import LoadRequest
from studio.core.base.units import format_count
from studio.gui.qt_layer_tree_model import COL_PARAMS, COL_TYPE, NODE_ROLE
from studio.gui.qt_resources import recent_sources


def visible_nodes(proxy, parent=QModelIndex()):
    for row in range(proxy.rowCount(parent)):
        index = proxy.index(row, 0, parent)
        yield index.data(NODE_ROLE)
        yield from visible_nodes(proxy, index)


def test_empty_state_then_digits(qtbot, window):
    assert window.stack.currentWidget() is window.empty
    assert "Open a model" in window.empty.hint.text()
    with qtbot.waitSignal(window.modelShown, timeout=60000):
        window.open_source(LoadRequest("sample:digits-cnn"))
    tree = window.opened.tree
    view, proxy = window.layers.view, window.layers.proxy
    assert window.stack.currentIndex() == 1
    assert proxy.rowCount() == 1 and proxy.rowCount(proxy.index(0, 0)) > 0
    assert view.isExpanded(proxy.index(0, 0))
    assert window.summary.value("Parameters") == format_count(tree.total_params)
    assert window.windowTitle().endswith("sample:digits-cnn")
    assert window.statusBar().currentMessage().startswith("Loaded in")
    assert window.details.node is tree.root
    assert recent_sources()[0]["source"] == "sample:digits-cnn"
    qtbot.waitUntil(lambda: window.reload_action.isEnabled(), timeout=5000)


def test_busy_state_shows_progress_and_keeps_open_available(qtbot, window):
    """While a job runs Open stays enabled (it asks to cancel the job first); model actions wait for a model."""
    window.open_source(LoadRequest("sample:digits-cnn"))
    assert window.runner.busy and window.progress.isVisibleTo(window)
    assert window.open_action.isEnabled() and not window.spec_action.isEnabled()
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=60000)
    assert not window.progress.isVisibleTo(window)
    assert window.spec_action.isEnabled() and window.reload_action.isEnabled()


def test_the_window_has_exactly_one_job_runner(window):
    from studio.gui.qt_worker import JobRunner

    assert window.findChildren(JobRunner) == [window.runner]
    for controller in (window.opening, window.plan, window.run, window.sensitivity):
        assert controller.runner is window.runner
        assert not hasattr(controller, "window")  # collaborators, never the window


def test_opening_while_loading_asks_and_no_keeps_the_load(qtbot, window, slow_factory, monkeypatch):
    asked: list[str] = []

    def answer(parent, title, text, *args):
        asked.append(text)
        return QMessageBox.StandardButton.No

    monkeypatch.setattr(QMessageBox, "question", staticmethod(answer))
    window.open_source(LoadRequest(f"{slow_factory}:SlowNet"))
    handle = window.runner.current
    window.open_source(LoadRequest("sample:digits-cnn"))
    assert len(asked) == 1 and "SlowNet" in asked[0] and "Cancel it to open sample:digits-cnn?" in asked[0]
    assert window.runner.current is handle and not handle.outcome
    with qtbot.waitSignal(window.modelShown, timeout=60000):
        pass
    assert window.opened.loaded.module.__class__.__name__ == "Sequential" and handle.outcome == "done"


def test_sort_by_params_descending(digits_window):
    view, proxy = digits_window.layers.view, digits_window.layers.proxy
    view.sortByColumn(COL_PARAMS, Qt.SortOrder.DescendingOrder)
    root = proxy.index(0, 0)
    children = [proxy.index(r, 0, root).data(NODE_ROLE) for r in range(proxy.rowCount(root))]
    params = [c.total_params for c in children]
    assert params == sorted(params, reverse=True)
    assert children[0] is max(digits_window.opened.tree.root.children, key=lambda n: n.total_params)


def test_filter_keeps_matches_and_ancestors(digits_window):
    panel = digits_window.layers
    total = len(list(visible_nodes(panel.proxy)))
    panel.filter_edit.setText("Linear")
    shown = list(visible_nodes(panel.proxy))
    matches = [n for n in shown if "linear" in n.type.lower() or "linear" in n.short_name.lower()]
    assert matches
    for node in shown:
        is_match = node in matches
        is_ancestor = any(_is_ancestor(node, m) for m in matches)
        assert is_match or is_ancestor, node.name
    panel.filter_edit.setText("")
    assert len(list(visible_nodes(panel.proxy))) == total


def _is_ancestor(node, other):
    parent = other.parent
    while parent is not None:
        if parent is node:
            return True
        parent = parent.parent
    return False


def test_find_shortcut_focuses_filter(digits_window, qtbot):
    from PySide6.QtGui import QKeySequence

    assert digits_window.find_action.shortcut() == QKeySequence("Ctrl+F")
    assert digits_window.open_action.shortcut() == QKeySequence("Ctrl+O")
    assert digits_window.spec_action.shortcut() == QKeySequence("Ctrl+I")
    assert digits_window.reload_action.shortcut() == QKeySequence("F5")
    digits_window.activateWindow()
    digits_window.layers.view.setFocus()
    digits_window.find_action.trigger()
    qtbot.waitUntil(lambda: digits_window.layers.filter_edit.hasFocus(), timeout=2000)


def test_selecting_a_row_fills_details(digits_window):
    proxy, view = digits_window.layers.proxy, digits_window.layers.view
    child = proxy.index(0, COL_TYPE, proxy.index(0, 0))
    view.setCurrentIndex(child)
    node = child.data(NODE_ROLE)
    assert digits_window.details.node is node
    assert node.type in digits_window.details.browser.toPlainText()


def test_bad_file_shows_error_and_keeps_model(qtbot, digits_window, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(os.urandom(256))
    before = digits_window.opened
    with qtbot.waitSignal(digits_window.loadFailed, timeout=30000) as blocker:
        digits_window.open_source(LoadRequest(str(bad)))
    dialog = digits_window.last_error_dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.objectName() == "errorDialog"
    assert dialog.text() == blocker.args[0]
    assert digits_window.isVisible()
    assert digits_window.opened is before
    assert digits_window.layers.model.tree is before.tree
    dialog.accept()


def test_pickled_model_asks_for_trust(qtbot, window, tmp_path):
    torch = pytest.importorskip("torch")
    from tests.gui.pickle_models import PickledNet

    path = tmp_path / "full_model.pt"
    torch.save(PickledNet(), path)
    with qtbot.waitSignal(window.loadFailed, timeout=30000):
        window.open_source(LoadRequest(str(path)))
    box = window.last_trust_dialog
    assert box is not None and box.isVisible() and box.objectName() == "trustDialog"
    assert "arbitrary code" in box.text()
    assert window.last_error_dialog is None
    with qtbot.waitSignal(window.modelShown, timeout=30000):
        box.button(QMessageBox.StandardButton.Yes).click()
    assert window.opened.loaded.module.__class__.__name__ == "PickledNet"
    assert window.opened.tree.total_params == sum(p.numel() for p in PickledNet().parameters())


def test_declining_trust_loads_nothing(qtbot, window, tmp_path):
    torch = pytest.importorskip("torch")
    from tests.gui.pickle_models import PickledNet

    path = tmp_path / "full_model.pt"
    torch.save(PickledNet(), path)
    with qtbot.waitSignal(window.loadFailed, timeout=30000):
        window.open_source(LoadRequest(str(path)))
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=5000)
    window.last_trust_dialog.button(QMessageBox.StandardButton.No).click()
    assert not window.runner.busy and window.opened is None


def test_reinspect_bad_then_good_spec(qtbot, digits_window):
    old_tree = digits_window.opened.tree
    with qtbot.waitSignal(digits_window.loadFailed, timeout=30000):
        digits_window.reinspect(InputSpec.parse("1x3x8x8 float32"))
    assert digits_window.last_error_dialog.isVisible()
    assert digits_window.layers.model.tree is old_tree
    digits_window.last_error_dialog.accept()
    qtbot.waitUntil(lambda: not digits_window.runner.busy, timeout=5000)
    with qtbot.waitSignal(digits_window.modelShown, timeout=30000):
        digits_window.reinspect(InputSpec.parse("4x1x8x8 float32"))
    new_tree = digits_window.opened.tree
    assert new_tree is not old_tree and new_tree.input_spec.startswith("4x1x8x8")
    assert new_tree.total_flops == pytest.approx(4 * old_tree.total_flops, rel=0.01)
    assert digits_window.summary.value("Input").startswith("4x1x8x8")


def test_drop_opens_file(qtbot, window, tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "scripted.pt"
    torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())).save(str(path))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.modelShown, timeout=30000):
        window.dropEvent(event)
    assert window.opened.loaded.kind == "torchscript"
    assert window.opened.loaded.source == str(path)


def test_recent_menu_lists_opened_sources(qtbot, digits_window):
    digits_window.recent_menu.refill()
    texts = [a.text() for a in digits_window.recent_menu.actions()]
    assert "sample:digits-cnn" in texts


def test_close_during_load_joins_thread(qtbot, window, slow_factory):
    with qtbot.waitSignal(window.runner.event, timeout=10000):  # the load has started
        window.open_source(LoadRequest(f"{slow_factory}:SlowNet"))
    assert window.runner.busy
    thread = window.runner._thread
    start = time.perf_counter()
    window.close()
    assert time.perf_counter() - start < 10
    assert not window.runner.busy
    assert thread.isFinished()


def test_remote_code_in_a_manifest_is_asked_not_obeyed(qtbot, window, tmp_path):
    from tests.core.test_trust import _manifest_folder, _remote_code_folder

    marker = tmp_path / "ran.txt"
    remote = _remote_code_folder(tmp_path, marker)
    folder = _manifest_folder(tmp_path, {"source": str(remote), "trust_remote_code": True, "name": "x"})
    with qtbot.waitSignal(window.loadFailed, timeout=30000):
        window.open_source(LoadRequest(str(folder)))
    box = window.last_trust_dialog
    assert box is not None and box.isVisible() and box.windowTitle() == "Remote code"
    assert "auto_map" in box.text()
    box.button(QMessageBox.StandardButton.No).click()
    assert not marker.exists() and window.last_error_dialog is None


def test_a_config_only_folder_opens_weightless_and_says_so(qtbot, window, tmp_path):
    from transformers import LlamaConfig

    config = LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, architectures=["LlamaForCausalLM"])
    config.save_pretrained(tmp_path / "config-only")
    with qtbot.waitSignal(window.modelShown, timeout=60000):
        window.open_source(LoadRequest(str(tmp_path / "config-only")))
    tree = window.opened.tree
    expected = sum(p.numel() for p in window.opened.loaded.module.parameters())  # meta tensors know their sizes
    assert tree.total_params == expected
    assert window.summary.value("Parameters") == format_count(expected)
    assert window.summary.value("Source") == "huggingface · no weights"
    assert all(p.is_meta for p in window.opened.loaded.module.parameters())
