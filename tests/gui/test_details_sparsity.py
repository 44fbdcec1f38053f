"""The details panel and the layer tree's tooltip say a weightless layer's sparsity is unknown
(its zeros were never counted), and show a real layer's exact count."""

from __future__ import annotations

import torch
from PySide6.QtCore import Qt
from torch import nn

from studio.core.model.inspection import inspect_model
from studio.gui.qt_details_panel import DetailsPanel, layer_rows
from studio.gui.qt_layer_tree_model import LayerTreeModel


def _half_meta_tree():
    model = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 5))
    with torch.no_grad():
        model[0].weight[:4] = 0  # 40 zeros of 110
        model[0].bias.fill_(1.0)
    model[1].weight = nn.Parameter(torch.empty(5, 10, device="meta"))
    return inspect_model(model, None)


def test_details_panel_shows_unknown_for_meta_and_the_count_for_real(qtbot):
    tree = _half_meta_tree()
    panel = DetailsPanel()
    qtbot.addWidget(panel)
    rows = {node.name: dict(layer_rows(node)) for node in tree.nodes()}
    assert rows["0"]["Sparsity"] == "36.4%  (40 zeros)"  # 40 / 110
    assert rows["1"]["Sparsity"] == rows[""]["Sparsity"] == "unknown (no weights)"
    panel.show_node(tree["1"])
    text = panel.browser.toPlainText()
    assert "unknown (no weights)" in text and "zeros" not in text
    panel.show_node(tree["0"])
    assert "40 zeros" in panel.browser.toPlainText()


def test_tree_tooltip_shows_unknown_for_meta(qtbot):
    tree = _half_meta_tree()
    model = LayerTreeModel()
    model.set_tree(tree)
    root = model.index(0, 0)
    tips = {}
    for row in range(model.rowCount(root)):
        index = model.index(row, 0, root)
        node = model.data(index, Qt.ItemDataRole.UserRole + 2)
        tips[node.name] = model.data(index, Qt.ItemDataRole.ToolTipRole)
    assert "Sparsity: 36.4% (40 zeros)" in tips["0"]
    assert "Sparsity: unknown (no weights)" in tips["1"] and "zeros" not in tips["1"]
    assert "Sparsity: unknown (no weights)" in model.data(root, Qt.ItemDataRole.ToolTipRole)


def test_window_shows_a_config_only_model_as_unknown_sparsity(qtbot, window, tmp_path):
    from transformers import LlamaConfig

    from studio.core.model.loaders import LoadRequest

    LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, architectures=["LlamaForCausalLM"]).save_pretrained(tmp_path / "cfg")
    with qtbot.waitSignal(window.modelShown, timeout=60000):
        window.open_source(LoadRequest(str(tmp_path / "cfg")))
    tree = window.opened.tree
    assert window.details.node is tree.root and tree.root.zero_params is None
    text = window.details.browser.toPlainText()
    assert "unknown (no weights)" in text and "zeros" not in text
    proxy = window.layers.proxy
    root = proxy.index(0, 0)
    assert "Sparsity: unknown (no weights)" in proxy.data(root, Qt.ItemDataRole.ToolTipRole)
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=10000)
