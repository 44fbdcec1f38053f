"""`QAbstractItemModel` adapter over the pure `ModelTree`.

The tree itself never changes while shown, so the adapter keeps no copies: every
index carries its `LayerNode` as internal pointer and parents come from
`node.parent` / the cached `node.row()`, which keeps 10k+ module models smooth.

A repaint asks about seven roles per visible cell, all at once through `multiData` (the filter
proxy forwards the batch, see `BatchedRolesProxy`), so the painted roles of a row are formatted
once into a per-row cache of plain dicts; plan edits and a sweep drop only the rows they change.
Sort keys, tooltips and the node are answered directly (sorting 10k rows must not format every
cell).
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
_NO_INDEX = QModelIndex()
# Plain ints: reading a PySide enum member costs Python calls, and data() runs thousands of times a paint.
DISPLAY, DECORATION, TOOLTIP, FONT, ALIGNMENT, BACKGROUND, FOREGROUND = (int(role) for role in (
    Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.ToolTipRole,
    Qt.ItemDataRole.FontRole, Qt.ItemDataRole.TextAlignmentRole, Qt.ItemDataRole.BackgroundRole,
    Qt.ItemDataRole.ForegroundRole))
_SORT, _NODE = int(SORT_ROLE), int(NODE_ROLE)
_COLUMNS = len(HEADERS)
_HORIZONTAL = Qt.Orientation.Horizontal
# Returned as ints: Qt reads alignment with toInt(), and an enum return costs PySide two Python calls.
_RIGHT_INT, _LEFT_INT = int(_RIGHT.value), int(_LEFT.value)


def node_tooltip(node: LayerNode) -> str:
    """Everything the row hides, in one hover (kept short: plain lines, no table)."""
    lines = [f"<b>{node.name or '(model)'}</b> — {node.type}",
             f"Params: {format_count(node.total_params)} in subtree, {format_count(node.params)} own, "
             f"{format_count(node.trainable_params)} trainable"]
    if node.bytes_by_dtype:
        dtypes = ", ".join(f"{dtype} {format_bytes(size)}" for dtype, size in node.bytes_by_dtype.items())
        lines.append(f"Size: {format_bytes(node.bytes)} ({dtypes})")
    if node.total_params:
        lines.append(f"Sparsity: {node.sparsity_text()}")
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
        self._rows: dict[int, list[dict[int, Any]]] = {}  # id(node) → per column {role: value} of painted roles
        self.cache_misses = 0  # rows formatted (tests count them: a repaint formats each changed row once)

    # --- data source ---------------------------------------------------------------
    def set_tree(self, tree: ModelTree | None) -> None:
        self.beginResetModel()
        self._tree = tree
        self._plan = {}
        self._sensitivity = {}
        self._rows = {}
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
        self._rows = {}  # the name column reads differently flat
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
        self._changed(old, self._sensitivity, COL_SENSITIVITY)

    def set_projection(self, layers: dict[str, Any]) -> None:
        """Show each marked layer's techniques and projected saving; only changed rows repaint."""
        old, self._plan = self._plan, dict(layers)
        self._changed(old, self._plan, COL_PLAN)

    def _changed(self, old: dict[str, Any], new: dict[str, Any], column: int) -> None:
        """Drop the cached rows whose entry changed; announce that column's cells in one range per
        parent: each dataChanged costs the proxy and the view a row layout, and a sweep or a `*`
        rule changes every layer at once."""
        if self._tree is None:
            return
        spans: dict[int, list[int]] = {}  # id(parent node) → [first row, last row]
        parents: dict[int, QModelIndex] = {}
        for name in set(old) | set(new):
            if name in self._tree and old.get(name) != new.get(name):
                node = self._tree[name]
                self._rows.pop(id(node), None)
                index = self.index_of(node, column)
                if not index.isValid():
                    continue
                key, row = id(node.parent) if self._flat is None else 0, index.row()
                span = spans.get(key)
                if span is None:
                    spans[key] = [row, row]
                    parents[key] = index.parent()
                else:
                    span[0], span[1] = min(span[0], row), max(span[1], row)
        for key, (first, last) in spans.items():
            parent = parents[key]
            self.dataChanged.emit(self.index(first, column, parent), self.index(last, column, parent))

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
    def index(self, row: int, column: int, parent: _IndexLike = _NO_INDEX) -> QModelIndex:
        flat = self._flat
        if flat is not None:
            if 0 <= row < len(flat) and 0 <= column < _COLUMNS and not parent.isValid():
                return self.createIndex(row, column, flat[row])
            return QModelIndex()
        if self._tree is None or row < 0 or not 0 <= column < _COLUMNS:
            return QModelIndex()
        node = parent.internalPointer() if parent.isValid() else None
        if node is None:
            return self.createIndex(row, column, self._tree.root) if row == 0 else QModelIndex()
        children = node.children
        return self.createIndex(row, column, children[row]) if row < len(children) else QModelIndex()

    def parent(self, index: _IndexLike | None = None) -> QModelIndex:  # type: ignore[override]
        if index is None:  # QObject.parent() shares the name
            return super().parent()  # type: ignore[return-value]
        if self._flat is not None or not index.isValid():
            return QModelIndex()
        parent = index.internalPointer().parent
        if parent is None:
            return QModelIndex()
        return self.createIndex(parent.row() if parent.parent is not None else 0, 0, parent)

    def rowCount(self, parent: _IndexLike = _NO_INDEX) -> int:
        if self._tree is None:
            return 0
        if self._flat is not None:
            return 0 if parent.isValid() else len(self._flat)
        if not parent.isValid():
            return 1
        if parent.column() != 0:
            return 0
        return len(parent.internalPointer().children)

    def columnCount(self, parent: _IndexLike = _NO_INDEX) -> int:
        return _COLUMNS

    def hasChildren(self, parent: _IndexLike = _NO_INDEX) -> bool:
        if self._tree is None:
            return False
        if self._flat is not None:
            return not parent.isValid() and bool(self._flat)
        if not parent.isValid():
            return True
        return parent.column() == 0 and bool(parent.internalPointer().children)

    # flags(): the base class answers enabled + selectable for valid indexes, in C++. A Python override
    # ran once per painted cell and PySide converts its enum result with two more Python calls.

    # --- content -------------------------------------------------------------------
    def data(self, index: _IndexLike, role: int = DISPLAY) -> Any:
        node = index.internalPointer() if index.isValid() else None
        if node is None:
            return None
        cells = self._rows.get(id(node))
        if cells is None:
            if role in (_SORT, _NODE, TOOLTIP):  # not painted: answer without formatting the row
                return self._direct(node, index.column(), role)
            cells = self._rows[id(node)] = self._format_row(node)
        cell = cells[index.column()]
        value = cell.get(role, cell)
        if value is not cell:
            return value
        return self._direct(node, index.column(), role) if role == _SORT or role == TOOLTIP else None

    def multiData(self, index: _IndexLike, roleDataSpan: Any) -> None:
        """Every role a delegate paints, in one call: Qt 6 views ask for seven roles per cell at once
        (one Python call instead of seven, and through the proxy one source lookup instead of seven)."""
        node = index.internalPointer() if index.isValid() else None
        if node is None:
            for item in roleDataSpan:
                item.clearData()
            return
        cells = self._rows.get(id(node))
        if cells is None:
            cells = self._rows[id(node)] = self._format_row(node)
        column = index.column()
        cell = cells[column]
        for item in roleDataSpan:
            role = item.role()
            value = cell.get(role, cell)
            if value is cell:
                value = self._direct(node, column, role) if role == _SORT or role == TOOLTIP else None
            item.setData(value)

    def _format_row(self, node: LayerNode) -> list[dict[int, Any]]:
        """The painted roles of every column of one row (display, alignment, colours, font, chip)."""
        self.cache_misses += 1
        flat = self._flat is not None
        foreground = self._dim if node.total_params == 0 else None
        font = self._bold if node.parent is None else None
        cells: list[dict[int, Any]] = []
        for column in range(_COLUMNS):
            text = node.name if column == COL_NAME and flat else _DISPLAY[column](node)
            cells.append({DISPLAY: text, ALIGNMENT: _RIGHT_INT if column in NUMERIC_COLUMNS else _LEFT_INT,
                          FOREGROUND: foreground, FONT: font, DECORATION: None, BACKGROUND: None,
                          _NODE: node})
        mark = self._sensitivity.get(node.name)
        sensitivity = cells[COL_SENSITIVITY]
        sensitivity[FOREGROUND] = sensitivity[FONT] = None
        if mark is not None:
            sensitivity[DISPLAY], sensitivity[DECORATION] = mark.text, mark.colour  # a heat chip
        else:
            sensitivity[DISPLAY] = None
        plan = cells[COL_PLAN]
        plan[DISPLAY] = self.plan_text(node)
        if node.name in self._plan:
            plan[BACKGROUND] = self._marked
        return cells

    def _direct(self, node: LayerNode, column: int, role: int) -> Any:
        """Roles outside the paint cache: sort keys, tooltips, the node; anything else is None."""
        if role == _NODE:
            return node
        if role == _SORT:
            if column == COL_SENSITIVITY:
                mark = self._sensitivity.get(node.name)
                return float("inf") if mark is None else mark.value
            if column == COL_PLAN:
                return self.plan_text(node)
            return node.name.lower() if column == COL_NAME and self._flat is not None else _SORT_KEY[column](node)
        if role != TOOLTIP:
            return None
        if column == COL_SENSITIVITY:
            mark = self._sensitivity.get(node.name)
            return None if mark is None else mark.tooltip
        if column == COL_PLAN:
            p = self._plan.get(node.name)
            if p is None:
                return node_tooltip(node)
            return (f"{'<br>'.join(p.techniques)}<br>projected: {format_count(p.before.params)} → "
                    f"{format_count(p.after.params)} params, {format_bytes(p.before.bytes)} → "
                    f"{format_bytes(p.after.bytes)}, {format_flops(p.before.flops)} → {format_flops(p.after.flops)}"
                    "<br><i>Double-click to edit</i>")
        return node_tooltip(node)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = DISPLAY) -> Any:
        if orientation != _HORIZONTAL or not 0 <= section < _COLUMNS:
            return None
        if role == DISPLAY:
            return HEADERS[section]
        if role == ALIGNMENT:
            return _RIGHT_INT if section in NUMERIC_COLUMNS else _LEFT_INT
        return None
