"""The tree adapter: Qt model contract, roles, formatting and big-model speed."""

from __future__ import annotations

import time

from PySide6.QtCore import QModelIndex, Qt

from studio.core.model.model_tree import LayerNode, ModelTree
from studio.core.base.units import format_bytes, format_count, format_percent
from studio.gui.qt_layer_tree_model import (
    COL_NAME, COL_PARAMS, COL_SHARE, COL_SIZE, HEADERS, NODE_ROLE, SORT_ROLE, LayerTreeModel,
)
from studio.gui.qt_layer_view import LayerFilterProxy


def wide_tree(blocks: int = 100, per_block: int = 100) -> ModelTree:
    """A synthetic 10k-module tree (no torch) to check the adapter stays O(1) per call."""
    root = LayerNode("", "Big", 0, total_params=blocks * per_block * 10)
    for b in range(blocks):
        block = LayerNode(f"block{b}", "Block", 1, total_params=per_block * 10, parent=root)
        root.children.append(block)
        for i in range(per_block):
            kind = "Linear" if i % 2 else "ReLU"
            params = 10 if kind == "Linear" else 0
            block.children.append(LayerNode(f"block{b}.{i}", kind, 2, params=params, total_params=params,
                                            parent=block))
    return ModelTree(root)


def test_model_contract_on_digits(qtmodeltester, digits_tree):
    model = LayerTreeModel()
    model.set_tree(digits_tree)
    qtmodeltester.check(model)


def test_model_contract_empty(qtmodeltester):
    model = LayerTreeModel()
    qtmodeltester.check(model)
    assert model.rowCount() == 0
    model.set_tree(None)
    qtmodeltester.check(model)


def test_model_contract_through_proxy(qtmodeltester, digits_tree):
    model = LayerTreeModel()
    model.set_tree(digits_tree)
    proxy = LayerFilterProxy()
    proxy.setSourceModel(model)
    proxy.set_needle("linear")
    qtmodeltester.check(proxy)


def test_roles_and_formatting(digits_tree):
    model = LayerTreeModel()
    model.set_tree(digits_tree)
    assert model.rowCount() == 1
    root = model.index(0, COL_NAME)
    assert root.data(NODE_ROLE) is digits_tree.root
    assert model.index(0, COL_PARAMS).data() == format_count(digits_tree.total_params)
    assert model.index(0, COL_PARAMS).data(SORT_ROLE) == digits_tree.total_params
    assert model.index(0, COL_SIZE).data() == format_bytes(digits_tree.total_bytes)
    assert model.index(0, COL_SHARE).data() == format_percent(1.0)
    assert model.rowCount(root) == len(digits_tree.root.children)
    child = model.index(0, COL_NAME, root)
    assert child.data(NODE_ROLE) is digits_tree.root.children[0]
    assert model.parent(child) == root
    assert model.index(0, COL_PARAMS).data(Qt.ItemDataRole.TextAlignmentRole) & Qt.AlignmentFlag.AlignRight
    assert "trainable" in model.index(0, COL_NAME).data(Qt.ItemDataRole.ToolTipRole)
    assert [model.headerData(c, Qt.Orientation.Horizontal) for c in range(len(HEADERS))] == list(HEADERS)


def test_zero_param_rows_are_dimmed(digits_tree):
    model = LayerTreeModel()
    model.set_tree(digits_tree)
    zero = next(n for n in digits_tree.nodes() if n.total_params == 0)
    assert model.index_of(zero).data(Qt.ItemDataRole.ForegroundRole) is not None
    assert model.index(0, 0).data(Qt.ItemDataRole.ForegroundRole) is None


def test_shared_parameters_mentioned_in_tooltip():
    root = LayerNode("", "Tied", 0, total_params=4, shared=True)
    model = LayerTreeModel()
    model.set_tree(ModelTree(root))
    assert "counted once" in model.index(0, 0).data(Qt.ItemDataRole.ToolTipRole)


def test_ten_thousand_modules_are_fast(qtbot):
    tree = wide_tree()
    assert len(tree) > 10_000
    model = LayerTreeModel()
    start = time.perf_counter()
    model.set_tree(tree)
    root = model.index(0, 0)
    for b in range(100):
        block = model.index(b, 0, root)
        for i in range(0, 100, 7):
            index = model.index(i, 2, block)
            assert model.parent(index) == block
            index.data()
    proxy = LayerFilterProxy()
    proxy.setSourceModel(model)
    proxy.set_needle("linear")
    proxy.sort(COL_PARAMS, Qt.SortOrder.DescendingOrder)
    assert proxy.rowCount(proxy.index(0, 0)) == 100
    assert time.perf_counter() - start < 5.0
    assert model.parent(QModelIndex()) == QModelIndex()
