"""The welcome screen before any model is open: open or pick a sample in one click, the recent
models, and the four steps of the studio pointing at the real controls."""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from studio.core.base.units import clip_left
from studio.gui.qt_resources import icon

HINT = "Open a model (Ctrl+O), drop a file here, or pick a sample"
RECENT_SHOWN = 5
STEP_WIDTH = 215
# (title, where the control is, what it does) — the guided path of the first ten minutes
STEPS = (
    ("Open", "File ▸ Open… (Ctrl+O) or a sample below",
     "A PyTorch file, a Hugging Face folder or file.py:Net; the tree shows where parameters, bytes and FLOPs are."),
    ("Mark", "select layers, right-click in the tree",
     "Prune, quantize or factorize them; the strip above the tree projects the saving. Sensitivity (toolbar) "
     "shows which layers can take it."),
    ("Run", "Run plan (F6), then Start run",
     "Applies the plan, fine-tunes with distillation if you ask, and charts loss, accuracy and size live."),
    ("Export", "Export (Ctrl+Shift+X)",
     "ONNX or TFLite, fp32 / fp16 / int8, verified in the runtime with its latency next to the fp32 file."),
)


class EmptyState(QWidget):
    """Emits `sampleChosen('sample:NAME')`, `openRequested()` or `recentChosen(source, weights)`."""

    sampleChosen = Signal(str)
    openRequested = Signal()
    recentChosen = Signal(str, str)  # source, weights ('' when none)

    def __init__(self, samples: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("emptyState")
        layout = QVBoxLayout(self)
        layout.addStretch(2)
        logo = QLabel()
        logo.setPixmap(icon("studio").pixmap(QSize(64, 64)))
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

        self.recent_box = QWidget()
        self.recent_layout = QVBoxLayout(self.recent_box)
        self.recent_layout.setContentsMargins(0, 10, 0, 0)
        self.recent_layout.setSpacing(2)
        layout.addWidget(self.recent_box, 0, Qt.AlignmentFlag.AlignHCenter)
        self.recent_buttons: list[QPushButton] = []

        layout.addSpacing(18)
        layout.addWidget(self._steps(), 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(3)

    def _steps(self) -> QFrame:
        """One rich-text label per step at a fixed width, so each wraps to its own true height."""
        frame = QFrame()
        frame.setObjectName("welcomeSteps")
        row = QHBoxLayout(frame)
        row.setContentsMargins(16, 12, 16, 14)
        row.setSpacing(22)
        for number, (title, where, what) in enumerate(STEPS, start=1):
            label = QLabel(f"<div class='step'><span style='font-size:11pt'><b>{number}&nbsp;&nbsp;{title}</b></span>"
                           f"<p style='margin:4px 0'><b>{where}</b></p><p style='margin:0'>{what}</p></div>")
            label.setObjectName("stepText")
            label.setWordWrap(True)
            label.setFixedWidth(STEP_WIDTH)
            label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
            row.addWidget(label, 0, Qt.AlignmentFlag.AlignTop)
        return frame

    def set_recent(self, entries: list[dict[str, str | None]]) -> None:
        """The last models opened, one click each (the full list stays in File ▸ Open Recent)."""
        for button in self.recent_buttons:
            button.deleteLater()
        self.recent_buttons = []
        while self.recent_layout.count():
            item = self.recent_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        if not entries:
            return
        title = QLabel("Recent")
        title.setObjectName("stepWhere")
        self.recent_layout.addWidget(title)
        for entry in entries[:RECENT_SHOWN]:
            source, weights = entry.get("source") or "", entry.get("weights") or ""
            button = QPushButton(icon("recent"), clip_left(source, 60) + (" (+ weights)" if weights else ""))
            button.setObjectName("recentButton")
            button.setFlat(True)
            button.setToolTip(source + (f"\nweights: {weights}" if weights else ""))
            button.clicked.connect(lambda _c=False, s=source, w=weights: self.recentChosen.emit(s, w))
            self.recent_layout.addWidget(button)
            self.recent_buttons.append(button)
