"""`QAbstractItemModel` adapter over the pure `ModelTree`.

The tree itself never changes while shown, so the adapter keeps no copies: every
index carries its `LayerNode` as internal pointer and parents come from
`node.parent` / the cached `node.row()`, which keeps 10k+ module models smooth.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QObject, QPersistentModelIndex, Qt
from PySide6.QtGui import QBrush, QColor, QFont

from studio.core.model.model_tree import LayerNode, ModelTree
from studio.core.base.units import format_bytes, format_count, format_flops, format_percent

SORT_ROLE = Qt.ItemDataRole.UserRole + 1  # raw numbers/strings, so sorting is numeric
NODE_ROLE = Qt.ItemDataRole.UserRole + 2  # the LayerNode behind a row

COL_NAME, COL_TYPE, COL_PARAMS, COL_SHARE, COL_SIZE, COL_FLOPS, COL_OUTPUT, COL_SENSITIVITY, COL_PLAN = range(9)
HEADERS = ("Name", "Type", "Params", "Share", "Size", "FLOPs", "Output shape", "Sensitivity", "Plan")
NUMERIC_COLUMNS = frozenset((COL_PARAMS, COL_SHARE, COL_SIZE, COL_FLOPS))

_DISPLAY: tuple[Callable[[LayerNode], str], ...] = (
    lambda n: n.short_name,
    lambda n: n.type,
    lambda n: format_count(n.total_params),
    lambda n: format_percent(n.share),
    lambda n: format_bytes(n.bytes),
    lambda n: format_flops(n.flops),
    lambda n: n.output_shape,
    lambda n: "",  # the sensitivity column is filled from a sweep, see `LayerTreeModel.data`
    lambda n: "",  # the plan column is filled from the projection, see `LayerTreeModel.data`
)
_SORT_KEY: tuple[Callable[[LayerNode], Any], ...] = (
    lambda n: n.short_name.lower(),
    lambda n: n.type.lower(),
    lambda n: n.total_params,
    lambda n: n.share,
    lambda n: n.bytes,
    lambda n: n.flops,
    lambda n: n.output_shape,
    lambda n: "",
    lambda n: "",
)
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
_IndexLike = QModelIndex | QPersistentModelIndex


def node_tooltip(node: LayerNode) -> str:
    """Everything the row hides, in one hover (kept short: plain lines, no table)."""
    lines = [f"<b>{node.name or '(model)'}</b> — {node.type}",
             f"Params: {format_count(node.total_params)} in subtree, {format_count(node.params)} own, "
             f"{format_count(node.trainable_params)} trainable"]
    if node.bytes_by_dtype:
        dtypes = ", ".join(f"{dtype} {format_bytes(size)}" for dtype, size in node.bytes_by_dtype.items())
        lines.append(f"Size: {format_bytes(node.bytes)} ({dtypes})")
    if node.total_params:
        lines.append(f"Sparsity: {format_percent(node.sparsity)} ({format_count(node.zero_params)} zeros)")
    if node.input_shape or node.output_shape:
        lines.append(f"Shapes: {node.input_shape or '?'} → {node.output_shape or '?'}")
    if node.shared:
        lines.append("<i>Shared/tied parameters counted once.</i>")
    return "<br>".join(lines)


class LayerTreeModel(QAbstractItemModel):
    """Shows the model root as the single top-level row, its modules beneath; or, flat, every
    layer that holds parameters as a top-level row (sorted, it answers "which layers are largest")."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tree: ModelTree | None = None
        self._flat: list[LayerNode] | None = None  # the leaf layers, when shown flat
        self._flat_row: dict[int, int] = {}
        self._plan: dict[str, Any] = {}  # layer name → LayerProjection (the what-if budget)
        self._sensitivity: dict[str, Any] = {}  # layer name → mark (.text .value .colour .tooltip) from a sweep
        self._marked = QBrush(QColor("#e8f0fe"))
        self._dim = QBrush(QColor("#9aa0a6"))
        self._bold = QFont()
        self._bold.setBold(True)

    # --- data source ---------------------------------------------------------------
    def set_tree(self, tree: ModelTree | None) -> None:
        self.beginResetModel()
        self._tree = tree
        self._plan = {}
        self._sensitivity = {}
        if self._flat is not None:
            self._set_flat_rows()
        self.endResetModel()

    @property
    def flat(self) -> bool:
        return self._flat is not None

    def set_flat(self, flat: bool) -> None:
        """Flat: the layers that own parameters (leaves of the module tree), one row each."""
        if flat == self.flat:
            return
        self.beginResetModel()
        if flat:
            self._set_flat_rows()
        else:
            self._flat, self._flat_row = None, {}
        self.endResetModel()

    def _set_flat_rows(self) -> None:
        nodes = self._tree.nodes() if self._tree is not None else ()
        self._flat = [n for n in nodes if n.parent is not None and not n.children and n.total_params]
        self._flat_row = {id(node): row for row, node in enumerate(self._flat)}

    def set_sensitivity(self, marks: dict[str, Any]) -> None:
        """The Sensitivity column: one mark per swept layer (drop at a reference setting)."""
        old, self._sensitivity = self._sensitivity, dict(marks)
        if self._tree is None:
            return
        for name in set(old) | set(self._sensitivity):
            if name in self._tree and old.get(name) != self._sensitivity.get(name):
                index = self.index_of(self._tree[name], COL_SENSITIVITY)
                if index.isValid():
                    self.dataChanged.emit(index, index)

    def set_projection(self, layers: dict[str, Any]) -> None:
        """Show each marked layer's techniques and projected saving; only changed rows repaint."""
        old, self._plan = self._plan, dict(layers)
        if self._tree is None:
            return
        for name in set(old) | set(self._plan):
            if name in self._tree and old.get(name) != self._plan.get(name):
                index = self.index_of(self._tree[name], COL_PLAN)
                if index.isValid():
                    self.dataChanged.emit(index, index)

    def plan_text(self, node: LayerNode) -> str:
        projection = self._plan.get(node.name)
        if projection is None:
            return ""
        text = " · ".join(projection.techniques)
        before, after = projection.before, projection.after
        if after.bytes < before.bytes:
            text += f"  (−{format_bytes(before.bytes - after.bytes)})"
        elif after.nonzero < before.nonzero and before.nonzero:
            text += f"  (−{format_percent(1 - after.nonzero / before.nonzero)} non-zero)"
        return text

    @property
    def tree(self) -> ModelTree | None:
        return self._tree

    def node(self, index: _IndexLike) -> LayerNode | None:
        return index.internalPointer() if index.isValid() else None

    def index_of(self, node: LayerNode, column: int = 0) -> QModelIndex:
        """Index of a node (e.g. to select a layer by name); invalid when the flat list omits it."""
        if self._flat is not None:
            row = self._flat_row.get(id(node))
            return QModelIndex() if row is None else self.createIndex(row, column, node)
        return self.createIndex(node.row() if node.parent else 0, column, node)

    # --- structure -----------------------------------------------------------------
    def index(self, row: int, column: int, parent: _IndexLike = QModelIndex()) -> QModelIndex:
        if self._tree is None or not 0 <= column < len(HEADERS) or row < 0:
            return QModelIndex()
        if self._flat is not None:
            valid = not parent.isValid() and row < len(self._flat)
            return self.createIndex(row, column, self._flat[row]) if valid else QModelIndex()
        if not parent.isValid():
            return self.createIndex(row, column, self._tree.root) if row == 0 else QModelIndex()
        children = parent.internalPointer().children
        return self.createIndex(row, column, children[row]) if row < len(children) else QModelIndex()

    def parent(self, index: _IndexLike | None = None) -> QModelIndex:  # type: ignore[override]
        if index is None:  # QObject.parent() shares the name
            return super().parent()  # type: ignore[return-value]
        if not index.isValid() or self._flat is not None:
            return QModelIndex()
        parent = index.internalPointer().parent
        if parent is None:
            return QModelIndex()
        return self.createIndex(parent.row() if parent.parent else 0, 0, parent)

    def rowCount(self, parent: _IndexLike = QModelIndex()) -> int:
        if self._tree is None:
            return 0
        if self._flat is not None:
            return 0 if parent.isValid() else len(self._flat)
        if not parent.isValid():
            return 1
        if parent.column() != 0:
            return 0
        return len(parent.internalPointer().children)

    def columnCount(self, parent: _IndexLike = QModelIndex()) -> int:
        return len(HEADERS)

    def hasChildren(self, parent: _IndexLike = QModelIndex()) -> bool:
        if self._tree is None:
            return False
        if self._flat is not None:
            return not parent.isValid() and bool(self._flat)
        if not parent.isValid():
            return True
        return parent.column() == 0 and bool(parent.internalPointer().children)

    def flags(self, index: _IndexLike) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    # --- content -------------------------------------------------------------------
    def data(self, index: _IndexLike, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        node: LayerNode = index.internalPointer()
        column = index.column()
        if column == COL_SENSITIVITY and role != NODE_ROLE:
            mark = self._sensitivity.get(node.name)
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return _LEFT  # next to its heat chip
            if mark is None:
                return float("inf") if role == SORT_ROLE else None
            return {Qt.ItemDataRole.DisplayRole: mark.text, SORT_ROLE: mark.value, Qt.ItemDataRole.ToolTipRole:
                    mark.tooltip, Qt.ItemDataRole.DecorationRole: mark.colour}.get(role)  # a heat chip
        if column == COL_PLAN:
            if role in (Qt.ItemDataRole.DisplayRole, SORT_ROLE):
                return self.plan_text(node)
            if role == Qt.ItemDataRole.BackgroundRole and node.name in self._plan:
                return self._marked
            if role == Qt.ItemDataRole.ToolTipRole and node.name in self._plan:
                p = self._plan[node.name]
                return (f"{'<br>'.join(p.techniques)}<br>projected: {format_count(p.before.params)} → "
                        f"{format_count(p.after.params)} params, {format_bytes(p.before.bytes)} → "
                        f"{format_bytes(p.after.bytes)}, {format_flops(p.before.flops)} → {format_flops(p.after.flops)}"
                        "<br><i>Double-click to edit</i>")
        if role == Qt.ItemDataRole.DisplayRole:
            if column == COL_NAME and self._flat is not None:
                return node.name  # flat rows have no parents to say where they sit
            return _DISPLAY[column](node)
        if role == SORT_ROLE:
            return node.name.lower() if column == COL_NAME and self._flat is not None else _SORT_KEY[column](node)
        if role == NODE_ROLE:
            return node
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if column in NUMERIC_COLUMNS else _LEFT
        if role == Qt.ItemDataRole.ForegroundRole:
            return self._dim if node.total_params == 0 else None
        if role == Qt.ItemDataRole.FontRole:
            return self._bold if node.parent is None else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return node_tooltip(node)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(HEADERS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if section in NUMERIC_COLUMNS else _LEFT
        return None
