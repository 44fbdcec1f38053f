"""What one repaint of the layer tree costs in Python: counted calls, not time (the GUI-thread stall
of issue 16 came from thousands of model calls per repaint; these counts keep the fix)."""

from __future__ import annotations

import sys
from collections import Counter
from types import SimpleNamespace

from PySide6.QtCore import Qt

import studio.gui.qt_layer_tree_model as tree_model
from studio.core.base.units import format_bytes, format_count
from studio.core.model.model_tree import LayerNode, ModelTree
from studio.gui.qt_layer_tree_model import COL_PARAMS, COL_PLAN, COL_SENSITIVITY, HEADERS, SORT_ROLE
from studio.gui.qt_layer_view import LayerTreePanel

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
    assert 0 < calls["data"] <= 8 * cells  # the roles a styled delegate asks for, no more
    assert calls["_direct"] <= rows  # only the share bar's sort key goes past the cache
    assert sum(calls.values()) <= 20 * cells  # index/parent come from the proxy's mapping


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
