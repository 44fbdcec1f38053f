"""A sort/filter proxy that passes a view's batched role requests through in one call.

Qt 6 delegates ask for all the roles they paint at once (`multiData`), but
`QSortFilterProxyModel` answers that role by role, mapping the index to the source again for
each: with a Python source model that is two Python calls per role and painted cell, most of a
repaint's cost. Forwarding the batch makes it one mapping and one call of the source's own
`multiData`.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSortFilterProxyModel


class BatchedRolesProxy(QSortFilterProxyModel):
    """A `QSortFilterProxyModel` whose source answers `multiData` itself."""

    def multiData(self, index: QModelIndex | QPersistentModelIndex, roleDataSpan: Any) -> None:
        self.sourceModel().multiData(self.mapToSource(index), roleDataSpan)


__all__ = ["BatchedRolesProxy"]
