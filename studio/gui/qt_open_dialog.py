"""Open dialog: every source the loaders accept, with the security trade-offs spelled out.

`studio.core.model.loaders` is imported only when a request is built, never at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (
    QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
    QLineEdit, QPushButton, QRadioButton, QStackedWidget, QVBoxLayout, QWidget,
)

from studio.core.base.errors import InputSpecError
from studio.core.model.input_spec import InputSpec
from studio.gui.qt_file_dialogs import open_file, open_folder

if TYPE_CHECKING:
    from studio.core.model.loaders import LoadRequest

FACTORY_WARNING = "Loading a Python factory runs code from that file — open only code you trust."
SAMPLE, FILE, FACTORY = range(3)


def _sample_choices() -> list[tuple[str, str]]:
    from studio.core.model.loaders.samples import SAMPLES  # torch-free listing

    return [(name, sample.description) for name, sample in SAMPLES.items()]


def _browse_row(edit: QLineEdit, *buttons: QPushButton) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(edit, 1)
    for button in buttons:
        layout.addWidget(button)
    return row


class OpenModelDialog(QDialog):
    """Collects a `LoadRequest`; OK stays disabled until the source and input spec are valid."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("openDialog")
        self.setWindowTitle("Open model")
        self.setMinimumWidth(620)
        layout = QVBoxLayout(self)

        self._kind = QButtonGroup(self)
        kinds = QHBoxLayout()
        for kind, label in ((SAMPLE, "Bundled sample"), (FILE, "File or folder"), (FACTORY, "Python factory")):
            radio = QRadioButton(label)
            self._kind.addButton(radio, kind)
            kinds.addWidget(radio)
        kinds.addStretch(1)
        layout.addLayout(kinds)

        self._pages = QStackedWidget()
        self._pages.addWidget(self._sample_page())
        self._pages.addWidget(self._file_page())
        self._pages.addWidget(self._factory_page())
        layout.addWidget(self._pages)

        options = QGroupBox("Options")
        form = QFormLayout(options)
        self.spec_edit = QLineEdit()
        self.spec_edit.setPlaceholderText("model's own, e.g. 1x3x224x224 float32  or  input_ids 1x128 int64")
        self.spec_error = QLabel()
        self.spec_error.setObjectName("inlineError")
        self.spec_error.setWordWrap(True)
        self.spec_error.hide()
        form.addRow("Input spec:", self.spec_edit)
        form.addRow("", self.spec_error)
        self.trust_check = QCheckBox("Trust pickled models (unpickling can run arbitrary code)")
        self.remote_check = QCheckBox("Trust remote code (Hugging Face folders)")
        form.addRow(self.trust_check)
        form.addRow(self.remote_check)
        layout.addWidget(options)

        self._buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self._buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Open")
        self._buttons.accepted.connect(self.accept)
        self._buttons.rejected.connect(self.reject)
        layout.addWidget(self._buttons)

        self._kind.idToggled.connect(self._on_kind)
        for edit in (self.path_edit, self.factory_file_edit, self.factory_name_edit, self.spec_edit):
            edit.textChanged.connect(self._validate)
        self._kind.button(SAMPLE).setChecked(True)
        self._validate()

    # --- pages ---------------------------------------------------------------------
    def _sample_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.sample_combo = QComboBox()
        self.sample_description = QLabel()
        self.sample_description.setObjectName("hint")
        self.sample_description.setWordWrap(True)
        for name, description in _sample_choices():
            self.sample_combo.addItem(name, description)
        self.sample_combo.currentIndexChanged.connect(
            lambda _i: self.sample_description.setText(self.sample_combo.currentData() or ""))
        self.sample_description.setText(self.sample_combo.currentData() or "")
        layout.addWidget(self.sample_combo)
        layout.addWidget(self.sample_description)
        layout.addStretch(1)
        return page

    def _file_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.path_edit = QLineEdit()
        self.path_edit.setPlaceholderText("model.pt, scripted.pt, or a Hugging Face / compressed-model folder")
        browse_file, browse_dir = QPushButton("Browse file…"), QPushButton("Browse folder…")
        browse_file.clicked.connect(lambda: self._pick_file(self.path_edit, "Models (*.pt *.pth *.bin *.ckpt);;All files (*)"))
        browse_dir.clicked.connect(self._pick_folder)
        layout.addWidget(_browse_row(self.path_edit, browse_file, browse_dir))
        hint = QLabel("TorchScript archives and Hugging Face folders open directly. Pickled full models "
                      "need the trust option below.")
        hint.setObjectName("hint")
        hint.setWordWrap(True)
        layout.addWidget(hint)
        layout.addStretch(1)
        return page

    def _factory_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.factory_file_edit = QLineEdit()
        self.factory_file_edit.setPlaceholderText("path/to/model.py")
        browse_py = QPushButton("Browse…")
        browse_py.clicked.connect(lambda: self._pick_file(self.factory_file_edit, "Python (*.py)"))
        self.factory_name_edit = QLineEdit()
        self.factory_name_edit.setPlaceholderText("class or function building the model, e.g. Net")
        self.weights_edit = QLineEdit()
        self.weights_edit.setPlaceholderText("optional: .safetensors or state_dict .pt")
        browse_w = QPushButton("Browse…")
        browse_w.clicked.connect(lambda: self._pick_file(
            self.weights_edit, "Weights (*.safetensors *.pt *.pth *.bin);;All files (*)"))
        form.addRow("File:", _browse_row(self.factory_file_edit, browse_py))
        form.addRow("Factory:", self.factory_name_edit)
        form.addRow("Weights:", _browse_row(self.weights_edit, browse_w))
        self.factory_warning = QLabel(FACTORY_WARNING)
        self.factory_warning.setObjectName("warningBanner")
        self.factory_warning.setWordWrap(True)
        form.addRow(self.factory_warning)
        return page

    def _pick_file(self, edit: QLineEdit, filters: str) -> None:
        path = open_file(self, "Choose a file", "models", filters, edit.text())
        if path:
            edit.setText(path)

    def _pick_folder(self) -> None:
        path = open_folder(self, "Choose a model folder", "models", self.path_edit.text())
        if path:
            self.path_edit.setText(path)

    # --- state ---------------------------------------------------------------------
    def kind(self) -> int:
        return self._kind.checkedId()

    def set_kind(self, kind: int) -> None:
        self._kind.button(kind).setChecked(True)

    def preset_factory(self, path: str) -> None:
        """A dropped .py file: the user still has to name the factory."""
        self.set_kind(FACTORY)
        self.factory_file_edit.setText(path)
        self.factory_name_edit.setFocus()

    def _on_kind(self, kind: int, checked: bool) -> None:
        if checked:
            self._pages.setCurrentIndex(kind)
            self._validate()

    def _spec(self) -> InputSpec | None:
        text = self.spec_edit.text().strip()
        return InputSpec.parse(text) if text else None

    def _validate(self) -> None:
        ok = True
        try:
            self._spec()
            self.spec_error.hide()
        except InputSpecError as exc:
            self.spec_error.setText(str(exc))
            self.spec_error.show()
            ok = False
        kind = self.kind()
        if kind == FILE:
            ok = ok and bool(self.path_edit.text().strip())
        elif kind == FACTORY:
            ok = ok and bool(self.factory_file_edit.text().strip()) and self.factory_name_edit.text().strip().isidentifier()
        self._buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    def source(self) -> str:
        kind = self.kind()
        if kind == SAMPLE:
            return f"sample:{self.sample_combo.currentText()}"
        if kind == FILE:
            return self.path_edit.text().strip()
        return f"{self.factory_file_edit.text().strip()}:{self.factory_name_edit.text().strip()}"

    def request(self) -> LoadRequest:
        from studio.core.model.loaders import LoadRequest

        weights = self.weights_edit.text().strip() if self.kind() == FACTORY else ""
        return LoadRequest(source=self.source(), weights=weights or None, trust=self.trust_check.isChecked(),
                           trust_remote_code=self.remote_check.isChecked(), input_spec=self._spec())
