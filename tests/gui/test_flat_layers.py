"""The flat "largest layers" view: every layer with parameters as one row, largest first."""

from __future__ import annotations

from studio.gui.qt_layer_tree_model import COL_NAME, COL_SIZE, NODE_ROLE, LayerTreeModel
from studio.gui.qt_layer_view import LayerTreePanel


def test_flat_model_contract_and_rows(qtmodeltester, digits_tree):
    model = LayerTreeModel()
    model.set_tree(digits_tree)
    model.set_flat(True)
    qtmodeltester.check(model)
    leaves = [n for n in digits_tree.nodes() if n.parent is not None and not n.children and n.total_params]
    assert model.rowCount() == len(leaves) and len(leaves) >= 3
    assert [model.index(r, 0).data(NODE_ROLE) for r in range(model.rowCount())] == leaves
    assert model.index(0, COL_NAME).data() == leaves[0].name  # qualified: flat rows have no parent to show
    assert not model.hasChildren(model.index(0, 0))
    model.set_flat(False)
    assert model.rowCount() == 1  # the tree again: the model row on top


def test_flat_view_lists_largest_first_and_keeps_the_selection(qtbot, digits_tree):
    panel = LayerTreePanel()
    qtbot.addWidget(panel)
    panel.set_tree(digits_tree)
    biggest = max((n for n in digits_tree.nodes() if not n.children and n.parent), key=lambda n: n.bytes)
    panel.view.setCurrentIndex(panel.proxy.mapFromSource(panel.model.index_of(biggest)))
    panel.flat_button.click()
    rows = [panel.proxy.index(r, COL_SIZE) for r in range(panel.proxy.rowCount())]
    sizes = [index.data(NODE_ROLE).bytes for index in rows]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == biggest.bytes
    assert panel.view.currentIndex().data(NODE_ROLE) is biggest
    assert panel.selected_nodes() == [biggest]
    panel.filter_edit.setText("conv")  # the filter works on the flat list too
    names = [panel.proxy.index(r, 0).data(NODE_ROLE).type for r in range(panel.proxy.rowCount())]
    assert names and all("conv" in n.lower() for n in names)
    panel.filter_edit.clear()
    panel.flat_button.click()
    assert panel.proxy.rowCount() == 1 and panel.view.isExpanded(panel.proxy.index(0, 0))
    assert panel.view.header().sortIndicatorSection() == -1  # back in model order
