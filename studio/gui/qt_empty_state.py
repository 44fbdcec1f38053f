"""What the window shows before any model is open: one hint and the samples one click away."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from studio.gui.qt_resources import icon

HINT = "Open a model (Ctrl+O), drop a file here, or pick a sample"


class EmptyState(QWidget):
    """Emits `sampleChosen('sample:NAME')` or `openRequested()`."""

    sampleChosen = Signal(str)
    openRequested = Signal()

    def __init__(self, samples: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("emptyState")
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        logo = QLabel()
        logo.setPixmap(icon("studio").pixmap(QSize(72, 72)))
        logo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(logo)
        self.hint = QLabel(HINT)
        self.hint.setObjectName("emptyHint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        open_button = QPushButton(icon("open"), "Open…")
        open_button.setObjectName("primaryButton")
        open_button.clicked.connect(self.openRequested)
        buttons.addWidget(open_button)
        for name in samples:
            button = QPushButton(icon("sample"), name)
            button.clicked.connect(lambda _checked=False, n=name: self.sampleChosen.emit(f"sample:{n}"))
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        layout.addStretch(3)
