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
