"""Filter box + sortable, filterable layer tree: the central panel of the window."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLineEdit, QToolButton, QTreeView,
                               QVBoxLayout, QWidget)

from studio.core.model.model_tree import LayerNode, ModelTree
from studio.gui.qt_layer_tree_model import (
    COL_FLOPS, COL_NAME, COL_OUTPUT, COL_PARAMS, COL_PLAN, COL_SENSITIVITY, COL_SHARE, COL_SIZE, COL_TYPE, NODE_ROLE,
    SORT_ROLE, LayerTreeModel,
)
from studio.gui.qt_proxy import BatchedRolesProxy
from studio.gui.qt_share_delegate import ShareBarDelegate

FILTER_PLACEHOLDER = "Filter layers by name or type  (Ctrl+F)"
COLUMN_WIDTHS = {COL_NAME: 250, COL_PLAN: 240, COL_SENSITIVITY: 90, COL_TYPE: 140, COL_PARAMS: 80, COL_SHARE: 110,
                 COL_SIZE: 80, COL_FLOPS: 105, COL_OUTPUT: 140}
# What the user edits and judges sits next to the name, in view on a 1366-px screen; the model's
# column numbers stay as they are (only the header's visual order changes).
VISUAL_ORDER = (COL_NAME, COL_PLAN, COL_SENSITIVITY, COL_TYPE, COL_PARAMS, COL_SHARE, COL_SIZE, COL_FLOPS, COL_OUTPUT)
FLAT_NAME_WIDTH = 420  # the flat list's name column at most
EXPAND_BUDGET = 32  # after load, open whole levels while about this many rows stay visible


class LayerFilterProxy(BatchedRolesProxy):
    """Matches the needle against a row's name or type; ancestors of matches stay visible.

    A needle containing '.' also matches qualified names (e.g. 'layer.3').
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._needle = ""
        self.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.setSortRole(SORT_ROLE)
        self.setSortCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

    @property
    def needle(self) -> str:
        return self._needle

    def set_needle(self, text: str) -> None:
        self._needle = text.strip().lower()
        # recursive only while filtering: with it on, every dataChanged re-filters the row's ancestors
        # and re-measures the model's root row (nine size hints), for nothing when all rows show
        self.setRecursiveFilteringEnabled(bool(self._needle))
        self.setFilterFixedString(self._needle)  # also invalidates the filter

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        if not self._needle:
            return True
        index = self.sourceModel().index(source_row, 0, source_parent)
        node: LayerNode | None = index.internalPointer() if index.isValid() else None
        if node is None:
            return False
        needle = self._needle
        if needle in node.short_name.lower() or needle in node.type.lower():
            return True
        return "." in needle and needle in node.name.lower()


class LayerTreePanel(QWidget):
    """Owns model, proxy and view; emits the selected `LayerNode` (or None)."""

    layerSelected = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.filter_edit = QLineEdit()
        self.filter_edit.setObjectName("layerFilter")
        self.filter_edit.setPlaceholderText(FILTER_PLACEHOLDER)
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.apply_filter)
        clear = QShortcut(QKeySequence(Qt.Key.Key_Escape), self.filter_edit)
        clear.setContext(Qt.ShortcutContext.WidgetShortcut)
        clear.activated.connect(self.filter_edit.clear)
        self.flat_button = QToolButton()
        self.flat_button.setObjectName("flatLayers")
        self.flat_button.setText("Largest layers")
        self.flat_button.setCheckable(True)
        self.flat_button.setStyleSheet("QToolButton:checked { background: palette(highlight); "
                                       "color: palette(highlighted-text); border-radius: 4px; padding: 2px 6px; }")
        self.flat_button.setToolTip("A flat list of every layer with parameters, largest first (click again "
                                    "for the tree); sort it by any column.")
        self.flat_button.toggled.connect(self.set_flat)
        bar = QHBoxLayout()
        bar.setSpacing(6)
        bar.addWidget(self.filter_edit, 1)
        bar.addWidget(self.flat_button)
        layout.addLayout(bar)

        self.model = LayerTreeModel(self)
        self.proxy = LayerFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.view = QTreeView()
        self.view.setObjectName("layerTree")
        self.view.setModel(self.proxy)
        self.view.setUniformRowHeights(True)
        self.view.setIndentation(16)  # deep transformer names keep their text; the Plan column its saving
        self.view.setAlternatingRowColors(True)
        self.view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)  # mark many layers at once
        self.view.setItemDelegateForColumn(COL_SHARE, ShareBarDelegate(self.view))
        header = self.view.header()
        header.setSortIndicatorClearable(True)  # third click returns to model order
        header.setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.view.setSortingEnabled(True)  # sorts by the (cleared) indicator: model order
        header.setStretchLastSection(True)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        for visual, column in enumerate(VISUAL_ORDER):
            header.moveSection(header.visualIndex(column), visual)
        for column, width in COLUMN_WIDTHS.items():
            self.view.setColumnWidth(column, width)
        self.view.selectionModel().currentRowChanged.connect(self._on_current)
        self.view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)  # the plan actions attach here
        layout.addWidget(self.view, 1)

    def selected_nodes(self) -> list:
        """The selected layers (one per row), in tree order."""
        rows = self.view.selectionModel().selectedRows(0)
        nodes = [self.proxy.mapToSource(index).internalPointer() for index in rows]
        order = {id(node): i for i, node in enumerate(self.model.tree.nodes())} if self.model.tree else {}
        return sorted(nodes, key=lambda node: order.get(id(node), 0))

    def set_tree(self, tree: ModelTree | None) -> None:
        self.model.set_tree(tree)
        if tree is None:
            self.layerSelected.emit(None)
            return
        self._expand_default()
        first = self.proxy.index(0, 0)
        if first.isValid():
            self.view.setCurrentIndex(first)

    def set_flat(self, flat: bool) -> None:
        """Flat list sorted by size (largest first), or the module tree in model order."""
        current = self.view.currentIndex().data(NODE_ROLE)
        self.flat_button.setChecked(flat)
        self.view.setRootIsDecorated(not flat)
        self.model.set_flat(flat)
        if flat:
            self.view.sortByColumn(COL_SIZE, Qt.SortOrder.DescendingOrder)
            # qualified names: wide enough for "…layer.3.intermediate.dense" (within reason)
            self.view.setColumnWidth(COL_NAME, min(FLAT_NAME_WIDTH, max(COLUMN_WIDTHS[COL_NAME],
                                                                         self.view.sizeHintForColumn(COL_NAME))))
        else:
            self.view.setColumnWidth(COL_NAME, COLUMN_WIDTHS[COL_NAME])
            self.view.header().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
            self.proxy.sort(-1)
            self._expand_default()
        index = self.model.index_of(current) if current is not None else QModelIndex()
        if index.isValid():
            self.view.setCurrentIndex(self.proxy.mapFromSource(index))
            self.view.scrollTo(self.view.currentIndex())

    def apply_filter(self, text: str) -> None:
        self.proxy.set_needle(text)
        if self.proxy.needle:
            self.view.expandAll()  # matches may sit deep in the tree
        else:
            self._expand_default()
        current = self.view.currentIndex()
        if current.isValid():
            self.view.scrollTo(current)

    def _expand_default(self) -> None:
        """Open level by level (always the model row) while the rows fit on a screen."""
        self.view.collapseAll()
        tree = self.model.tree
        if tree is None or self.model.flat:
            return
        level, visible, depth = [tree.root], 1, 0
        while level:
            below = [child for node in level for child in node.children]
            if depth >= 1 and visible + len(below) > EXPAND_BUDGET:
                break
            for node in level:
                self.view.expand(self.proxy.mapFromSource(self.model.index_of(node)))
            visible += len(below)
            level = [node for node in below if node.children]
            depth += 1

    def expand_all(self) -> None:
        self.view.expandAll()

    def collapse_all(self) -> None:
        self.view.collapseAll()
        if not self.model.flat:
            self.view.expand(self.proxy.index(0, 0))  # keep the model row open: its children are the map

    def focus_filter(self) -> None:
        self.filter_edit.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter_edit.selectAll()

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.layerSelected.emit(current.data(NODE_ROLE) if current.isValid() else None)
