"""Ask a model for roles the way a Qt 6 delegate does (`multiData`), for comparing with `data()`."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelRoleData, QModelRoleDataSpan, Qt

# what QStyledItemDelegate.initStyleOption asks for, plus our sort key and tooltip
PAINTED = tuple(int(r) for r in (Qt.ItemDataRole.FontRole, Qt.ItemDataRole.TextAlignmentRole,
                                 Qt.ItemDataRole.ForegroundRole, Qt.ItemDataRole.CheckStateRole,
                                 Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.DisplayRole,
                                 Qt.ItemDataRole.BackgroundRole, Qt.ItemDataRole.ToolTipRole))


def batched(model, index, roles=PAINTED) -> dict[int, Any]:
    """Each role through `multiData` (a span of one: PySide builds spans of one item)."""
    out = {}
    for role in roles:
        item = QModelRoleData(role)
        model.multiData(index, QModelRoleDataSpan(item))
        out[role] = item.data()
    return out


def one_by_one(model, index, roles=PAINTED) -> dict[int, Any]:
    return {role: model.data(index, role) for role in roles}
