"""What one repaint of the layer tree costs in Python: counted calls, not time (the GUI-thread stall
of issue 16 came from thousands of model calls per repaint; these counts keep the fix)."""

from __future__ import annotations

import sys
from collections import Counter
from types import SimpleNamespace

from PySide6.QtCore import QModelIndex, Qt

import studio.gui.qt_layer_tree_model as tree_model
from studio.core.base.units import format_bytes, format_count
from studio.core.model.model_tree import LayerNode, ModelTree
from studio.gui.qt_layer_tree_model import COL_PARAMS, COL_PLAN, COL_SENSITIVITY, HEADERS, SORT_ROLE
from studio.gui.qt_layer_view import LayerTreePanel
from tests.gui.role_batches import PAINTED, batched, one_by_one
from tests.gui.test_layer_tree_model import wide_tree

MODEL_FILE = tree_model.__file__


def small_tree(layers: int = 40) -> ModelTree:
    root = LayerNode("", "Net", 0, total_params=layers * 10)
    for i in range(layers):
        params = 10 * (i % 3)
        root.children.append(LayerNode(f"fc{i}", "Linear", 1, params=params, total_params=params, parent=root))
    return ModelTree(root)


def projection(saved: int) -> SimpleNamespace:
    before = SimpleNamespace(params=100, bytes=400, flops=1000, nonzero=100)
    after = SimpleNamespace(params=50, bytes=400 - saved, flops=500, nonzero=50)
    return SimpleNamespace(techniques=("prune 50%",), before=before, after=after)


def model_calls(action) -> Counter:
    """Python calls into qt_layer_tree_model.py (by function) while `action` runs."""
    counts: Counter = Counter()

    def profile(frame, event, _arg):
        if event == "call" and frame.f_code.co_filename == MODEL_FILE:
            counts[frame.f_code.co_name] += 1
    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return counts


def painted_panel(qtbot, tree: ModelTree) -> LayerTreePanel:
    panel = LayerTreePanel()
    qtbot.addWidget(panel)
    panel.resize(1400, 360)
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_tree(tree)
    qtbot.waitUntil(lambda: panel.model.cache_misses >= 10)  # the first paint, from the event loop
    panel.view.viewport().repaint()
    return panel


def visible_rows(panel: LayerTreePanel) -> int:
    view, rows, index = panel.view, 0, panel.view.indexAt(panel.view.viewport().rect().topLeft())
    while index.isValid() and view.visualRect(index).top() < view.viewport().height():
        rows, index = rows + 1, view.indexBelow(index)
    return rows


def test_a_repaint_formats_nothing_and_asks_few_roles_per_cell(qtbot):
    panel = painted_panel(qtbot, small_tree())
    rows = visible_rows(panel)
    assert rows >= 10
    formatted = panel.model.cache_misses
    assert formatted >= rows  # the first paint formatted each visible row once
    calls = model_calls(panel.view.viewport().repaint)
    cells = rows * len(HEADERS)
    assert panel.model.cache_misses == formatted  # an unchanged repaint formats nothing
    assert calls["_format_row"] == 0 and calls["node_tooltip"] == 0 and calls["plan_text"] == 0
    assert calls["flags"] == 0  # answered by the C++ base class
    assert 0 < calls["multiData"] <= cells  # every role a delegate paints in one call per cell (3,987 → 1,503
    assert calls["data"] <= rows            # calls when the proxy asked role by role); data(): the share bar's key
    assert calls["_direct"] <= rows  # only the share bar's sort key goes past the cache
    assert sum(calls.values()) <= 8 * cells  # index/parent come from the proxy's mapping


def test_marks_of_every_layer_are_one_change_per_parent_and_measure_no_row(qtbot):
    """A sweep's end (or a `*` rule) changes every layer's cell at once: one dataChanged per parent,
    and no size hints (a recursive filter made each change re-measure the root row: nine cells)."""
    tree = wide_tree(12, 5)
    panel = painted_panel(qtbot, tree)
    panel.view.expandAll()
    panel.view.setColumnHidden(COL_SENSITIVITY, False)
    panel.view.viewport().repaint()
    model = panel.model
    changed = []
    model.dataChanged.connect(lambda top, bottom, _roles: changed.append(
        (top.parent().internalPointer().name, top.row(), bottom.row(), top.column(), bottom.column())))
    leaves = [n for n in tree.nodes() if not n.children]
    marks = {n.name: SimpleNamespace(text=f"{i} %", value=i / 100, colour=None, tooltip="") for i, n in enumerate(leaves)}
    calls = model_calls(lambda: model.set_sensitivity(marks))
    assert sorted(changed) == sorted((f"block{b}", 0, 4, COL_SENSITIVITY, COL_SENSITIVITY) for b in range(12))
    assert calls["multiData"] == calls["data"] == calls["_format_row"] == 0
    for node in leaves:  # every changed cell reads its new mark
        assert model.index_of(node, COL_SENSITIVITY).data() == marks[node.name].text
    changed.clear()
    model.set_sensitivity({**marks, "block2.3": SimpleNamespace(text="x", value=1.0, colour=None, tooltip="")})
    assert changed == [("block2", 3, 3, COL_SENSITIVITY, COL_SENSITIVITY)]
    panel.proxy.set_needle(".3")  # filtering still keeps the ancestors of matches (block0.3 … block11.3)
    assert panel.proxy.rowCount(panel.proxy.index(0, 0)) == 12
    assert panel.proxy.rowCount(panel.proxy.index(0, 0, panel.proxy.index(0, 0))) == 1


def test_a_plan_edit_repaints_and_reformats_only_its_row(qtbot):
    tree = small_tree()
    panel = painted_panel(qtbot, tree)
    model = panel.model
    changed = []
    model.dataChanged.connect(lambda top, bottom, _roles: changed.append((top.row(), top.column(),
                                                                         bottom.row(), bottom.column())))
    before = model.cache_misses
    model.set_projection({"fc3": projection(300)})
    assert changed == [(3, COL_PLAN, 3, COL_PLAN)]
    panel.view.viewport().repaint()
    assert model.cache_misses == before + 1
    cell = model.index_of(tree["fc3"], COL_PLAN)
    assert cell.data() == f"prune 50%  (−{format_bytes(300)})"
    assert cell.data(Qt.ItemDataRole.BackgroundRole) is not None
    assert "projected" in cell.data(Qt.ItemDataRole.ToolTipRole)
    # an edit of the same layer is seen at once (the cached row was dropped), removing it clears it
    model.set_projection({"fc3": projection(100)})
    assert cell.data() == f"prune 50%  (−{format_bytes(100)})"
    model.set_projection({})
    assert cell.data() == "" and cell.data(Qt.ItemDataRole.BackgroundRole) is None
    assert model.index_of(tree["fc4"], COL_PLAN).data() == ""
    assert changed[1:] == [(3, COL_PLAN, 3, COL_PLAN)] * 2


def test_sensitivity_marks_update_their_cells(qtbot):
    tree = small_tree()
    panel = painted_panel(qtbot, tree)
    model = panel.model
    cell = model.index_of(tree["fc2"], COL_SENSITIVITY)
    assert cell.data() is None and cell.data(SORT_ROLE) == float("inf")
    mark = SimpleNamespace(text="1.5 %", value=0.015, colour=None, tooltip="drop 1.5 %")
    model.set_sensitivity({"fc2": mark})
    assert cell.data() == "1.5 %" and cell.data(SORT_ROLE) == 0.015
    assert cell.data(Qt.ItemDataRole.ToolTipRole) == "drop 1.5 %"
    assert model.index_of(tree["fc2"], COL_PARAMS).data() == format_count(20)  # the row's other cells stay right


def test_sorting_does_not_format_rows(qtbot):
    tree = small_tree(400)
    panel = LayerTreePanel()
    qtbot.addWidget(panel)
    panel.set_tree(tree)  # never shown: nothing painted (the view measures one row for its row height)
    measured = panel.model.cache_misses
    assert measured <= 1
    panel.proxy.sort(COL_PARAMS, Qt.SortOrder.DescendingOrder)
    first = panel.proxy.index(0, 0, panel.proxy.index(0, 0))
    assert panel.proxy.mapToSource(first).internalPointer().total_params == 20
    assert panel.model.cache_misses == measured  # 401 sort keys read without formatting a row


def test_batched_roles_equal_the_single_roles_in_tree_and_flat_rows(qtbot):
    """multiData (what the delegates ask) answers what data() answers, role for role: plain,
    marked and planned rows, the root, flat rows, and through the filter proxy."""
    tree = wide_tree(3, 3)
    panel = LayerTreePanel()
    qtbot.addWidget(panel)
    panel.set_tree(tree)
    model, proxy = panel.model, panel.proxy
    model.set_projection({"block1.1": projection(300)})
    model.set_sensitivity({"block0.1": SimpleNamespace(text="3 %", value=0.03, colour=None, tooltip="drop 3 %")})
    roles = PAINTED + (int(SORT_ROLE),)
    for flat in (False, True):
        panel.model.set_flat(flat)
        nodes = [n for n in tree.nodes() if model.index_of(n).isValid()]
        assert len(nodes) == (3 if flat else 13)  # flat: the Linear leaves (the ReLUs hold no parameters)
        for node in nodes:
            for column in range(len(HEADERS)):
                index = model.index_of(node, column)
                assert batched(model, index, roles) == one_by_one(model, index, roles)
                view_index = proxy.mapFromSource(index)
                assert batched(proxy, view_index, roles) == one_by_one(model, index, roles)
    assert batched(model, QModelIndex()) == dict.fromkeys(PAINTED)
