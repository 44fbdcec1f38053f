"""The row of cards above the tree: the model's headline numbers, readable at a glance."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from studio.core.model.model_tree import ModelTree
from studio.core.base.units import format_bytes, format_count, format_flops

CAPTIONS = ("Model", "Source", "Parameters", "Size", "FLOPs", "Input", "Layers")
_WIDE = frozenset(("Model", "Input"))
# in a narrow strip (a panel open beside the tree) these cards give way, in this order; the rest always show
GIVE_WAY = ("Source", "Layers", "Input", "FLOPs")


class ElidedLabel(QLabel):
    """Keeps the full text but paints it elided, so long values never widen the window."""

    def __init__(self, text: str, mode: Qt.TextElideMode = Qt.TextElideMode.ElideMiddle) -> None:
        super().__init__(text)
        self._mode = mode

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(min(hint.width(), 60), hint.height())

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        return QSize(min(hint.width(), 160), hint.height())

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setFont(self.font())
        painter.setPen(self.palette().color(self.foregroundRole()))
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), self._mode, rect.width())
        painter.drawText(rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), text)
        painter.end()  # not left to refcounting: with gc off, a frame kept alive would keep the painter active


class _Card(QFrame):
    def __init__(self, caption: str) -> None:
        super().__init__()
        self.setObjectName("summaryCard")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(14, 8, 14, 8)
        layout.setSpacing(2)
        wide = caption in _WIDE  # free text is elided; numbers always show in full
        if wide:
            mode = Qt.TextElideMode.ElideRight if caption == "Input" else Qt.TextElideMode.ElideMiddle
            self.value: QLabel = ElidedLabel("—", mode)
            self.value.setObjectName("cardText")
        else:
            self.value = QLabel("—")
            self.value.setObjectName("cardValue")
        self.caption = QLabel(caption.upper())
        self.caption.setObjectName("cardCaption")
        layout.addWidget(self.value)
        layout.addWidget(self.caption)
        policy = QSizePolicy.Policy.Expanding if wide else QSizePolicy.Policy.Minimum
        self.setSizePolicy(policy, QSizePolicy.Policy.Fixed)

    def set_value(self, text: str, tooltip: str = "") -> None:
        """Long values (paths, multi-input specs) are elided on screen; the tooltip keeps them whole."""
        self.value.setText(text)
        self.setToolTip(tooltip or text)


class SummaryStrip(QWidget):
    """Name, source kind, params, size, FLOPs, input spec and layer count as cards."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("summaryStrip")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(10)
        self._cards = {caption: _Card(caption) for caption in CAPTIONS}
        for caption, card in self._cards.items():
            layout.addWidget(card, 3 if caption == "Model" else 2 if caption == "Input" else 0)

    def show_model(self, name: str, kind: str, tree: ModelTree, stored_bytes: int | None = None,
                   weightless: bool = False) -> None:
        """`stored_bytes`: a compressed model's size at its real bit widths, when it differs from
        what its simulated (float) tensors occupy in memory. `weightless`: built from a config on
        the meta device (the figures are exact, but there is nothing to run)."""
        values = {
            "Model": name.removeprefix("sample:") if kind == "sample" else name,
            "Source": f"{kind} · no weights" if weightless else kind,
            "Parameters": format_count(tree.total_params),
            "Size": format_bytes(tree.total_bytes),
            "FLOPs": format_flops(tree.total_flops),
            "Input": tree.input_spec,
            "Layers": format_count(len(tree)),
        }
        tips = {"Parameters": f"{tree.total_params:,} parameters", "Size": f"{tree.total_bytes:,} bytes",
                "FLOPs": f"{tree.total_flops:,} FLOPs per forward pass", "Layers": f"{len(tree):,} modules"}
        if weightless:
            tips["Source"] = ("built from config.json on the meta device: parameters, bytes, FLOPs and shapes are "
                              "exact and plans project their savings; running, sweeping and exporting need weights")
        if stored_bytes is not None and stored_bytes != tree.total_bytes:
            values["Size"] = format_bytes(stored_bytes)
            tips["Size"] = (f"{stored_bytes:,} bytes at the real bit widths (int8/int4 codes + scales); the simulated "
                            f"model holds {format_bytes(tree.total_bytes)} as float tensors in memory")
        for caption, text in values.items():
            self._cards[caption].set_value(text, tips.get(caption, name if caption == "Model" else ""))
        self._fit_cards(self.width())

    def minimumSizeHint(self) -> QSize:
        """Room for the cards that never give way: a narrow window hides the others instead of growing."""
        kept = [card for caption, card in self._cards.items() if caption not in GIVE_WAY]
        return QSize(self._needed(kept), super().minimumSizeHint().height())

    def _needed(self, cards: list[_Card]) -> int:
        return sum(card.minimumSizeHint().width() for card in cards) + self.layout().spacing() * (len(cards) - 1)

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._fit_cards(event.size().width())

    def _fit_cards(self, width: int) -> None:
        hidden: list[str] = []
        for caption in (None, *GIVE_WAY):
            if caption is not None:
                hidden.append(caption)
            shown = [card for name, card in self._cards.items() if name not in hidden]
            if self._needed(shown) <= width:
                break
        for caption, card in self._cards.items():
            card.setVisible(caption not in hidden)

    def clear(self) -> None:
        for card in self._cards.values():
            card.set_value("—")

    def value(self, caption: str) -> str:
        """The full text of one card (tests and accessibility)."""
        return self._cards[caption].value.text()
