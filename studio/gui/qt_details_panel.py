"""Right-hand panel: the selected layer's full record and the model's notes."""

from __future__ import annotations

import re
from html import escape

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QTextBrowser, QWidget

from studio.core.model.model_tree import LayerNode
from studio.core.base.units import format_bytes, format_count, format_flops, format_percent

EMPTY_HTML = "<p style='color:#80868b'>Select a layer to see its details.</p>"
_BREAK_AFTER = re.compile(r"\.(?=[A-Za-z_])|,(?=\s?\d+x)")  # name dots; commas between shapes, not in 22,713,986
_UNITS = (" k", " M", " G", " T", " B", " kB", " MB", " GB", " kFLOPs", " MFLOPs", " GFLOPs", " TFLOPs", " FLOPs", " %")


def _wrappable(value: str) -> str:
    """HTML for a value that wraps only where a reader expects: after the dots of a qualified
    name or the commas of a tuple shape, never between a number and its unit."""
    text = escape(value)
    for unit in _UNITS:
        text = text.replace(unit, "\u00a0" + unit[1:])
    return _BREAK_AFTER.sub(lambda match: match.group(0) + "\u200b", text)


def layer_rows(node: LayerNode) -> list[tuple[str, str]]:
    """(label, value) pairs; kept separate from HTML so tests can read them."""
    dtypes = ", ".join(f"{dtype}: {format_bytes(size)}" for dtype, size in node.bytes_by_dtype.items())
    return [
        ("Name", node.name or "(model)"),
        ("Type", node.type),
        ("Depth", str(node.depth)),
        ("Params", f"{format_count(node.total_params)}  ({node.total_params:,})"),
        ("Own params", f"{format_count(node.params)}  ({node.params:,})"),
        ("Trainable", format_count(node.trainable_params)),
        ("Size", format_bytes(node.bytes)),
        ("Bytes by dtype", dtypes or "—"),
        ("Share of model", format_percent(node.share)),
        ("FLOPs", format_flops(node.flops)),
        ("Input shape", node.input_shape or "—"),
        ("Output shape", node.output_shape or "—"),
        ("Sparsity", node.sparsity_text(gap="  ")),
        ("Shared/tied", "yes — counted once" if node.shared else "no"),
        ("Children", str(len(node.children))),
    ]


class DetailsPanel(QDockWidget):
    """A dock so users can float or close it; the text is selectable for copying."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Layer details", parent)
        self.setObjectName("detailsPanel")
        self.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QDockWidget.DockWidgetFeature.DockWidgetFloatable
                         | QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.browser = QTextBrowser()
        self.browser.setObjectName("detailsBrowser")
        self.browser.setOpenLinks(False)
        self.browser.setMinimumWidth(280)
        self.setWidget(self.browser)
        self.setAllowedAreas(Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea)
        self._notes: tuple[str, ...] = ()
        self._node: LayerNode | None = None
        self.browser.setHtml(EMPTY_HTML)

    @property
    def node(self) -> LayerNode | None:
        return self._node

    def set_notes(self, notes: tuple[str, ...]) -> None:
        self._notes = tuple(notes)
        self.show_node(self._node)

    def show_node(self, node: LayerNode | None) -> None:
        self._node = node
        parts = []
        if node is None:
            parts.append(EMPTY_HTML)
        else:
            parts.append(f"<h3 style='margin-bottom:2px'>{_wrappable(node.short_name)}</h3>")
            parts.append(f"<div style='color:#5f6368'>{escape(node.type)}</div>")
            parts.append("<table cellspacing='0' cellpadding='3' width='100%' style='margin-top:8px'>")
            for label, value in layer_rows(node):
                parts.append(f"<tr><td style='color:#5f6368; white-space:nowrap'>{escape(label)}</td>"
                             f"<td>{_wrappable(value)}</td></tr>")
            parts.append("</table>")
        if self._notes:
            parts.append("<h4 style='margin-top:14px'>Model notes</h4><ul style='margin-left:-20px'>")
            parts.extend(f"<li>{escape(note)}</li>" for note in self._notes)
            parts.append("</ul>")
        self.browser.setHtml("".join(parts))
