"""Edit the example-input spec used for FLOPs and shapes, validated as the user types."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from studio.core.base.errors import InputSpecError
from studio.core.model.input_spec import InputSpec

HELP = ("Entries separated by ';', each <code>[name] SHAPE [dtype] [[low,high)]</code>, e.g. "
        "<code>1x3x224x224 float32</code> or <code>input_ids 1x128 int64 [0,30522)</code>.")


class InputSpecDialog(QDialog):
    """OK is enabled only while the text parses; `spec()` returns the parsed spec."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("inputSpecDialog")
        self.setWindowTitle("Input spec")
        self.setMinimumWidth(560)
        layout = QVBoxLayout(self)
        help_label = QLabel(HELP)
        help_label.setObjectName("hint")
        help_label.setWordWrap(True)
        layout.addWidget(help_label)
        self.edit = QLineEdit(text)
        layout.addWidget(self.edit)
        self.error = QLabel()
        self.error.setObjectName("inlineError")
        self.error.setWordWrap(True)
        layout.addWidget(self.error)
        self._buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self._buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Inspect")
        self._buttons.accepted.connect(self.accept)
        self._buttons.rejected.connect(self.reject)
        layout.addWidget(self._buttons)
        self._spec: InputSpec | None = None
        self.edit.textChanged.connect(self._validate)
        self._validate()

    def _validate(self) -> None:
        try:
            self._spec = InputSpec.parse(self.edit.text())
            self.error.hide()
        except InputSpecError as exc:
            self._spec = None
            self.error.setText(str(exc))
            self.error.show()
        self._buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(self._spec is not None)

    def spec(self) -> InputSpec | None:
        return self._spec
