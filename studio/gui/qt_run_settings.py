"""The settings side of the Run panel: data, fine-tuning and distillation controls plus
Start/Cancel. It reads and writes the recipe's `settings` so a run replays exactly."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSpinBox, QVBoxLayout, QWidget)

from studio.core.data.specs import spec_choices
from studio.gui.qt_file_dialogs import open_file, open_folder
from studio.gui.qt_resources import icon
from studio.gui.qt_theme import set_sheet

DATA_SPECS = spec_choices()
# The fields this box edits; other FinetuneSettings keys from a recipe are carried through.
FINETUNE_DEFAULTS: dict[str, Any] = {"epochs": 0, "lr": "auto", "distill": True, "temperature": 4.0, "alpha": 0.7}
_BROWSE = {"imagefolder": "", "csv": "CSV files (*.csv);;All files (*)",
           "tensors": "Tensors (*.npy *.safetensors);;All files (*)", "text": "Text (*.txt);;All files (*)"}


def named(widget: Any, name: str, tip: str = "") -> Any:
    widget.setObjectName(name)
    widget.setToolTip(tip)
    return widget


def _spin(name: str, low: float, high: float, step: float, decimals: int, tip: str) -> QDoubleSpinBox:
    spin = named(QDoubleSpinBox(), name, tip)
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setDecimals(decimals)
    return spin


class RunSettingsBox(QGroupBox):
    """Data spec, epochs, distillation weights; Start and Cancel."""

    startRequested = Signal()
    cancelRequested = Signal()
    findLrRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Run settings", parent)
        self._running = False
        self._extra_finetune: dict[str, Any] = {}
        self._last_data = "sample"
        self.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        self.setFixedWidth(250)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        form.setVerticalSpacing(8)
        self.data_combo = named(QComboBox(), "dataSpec", "Data for evaluation and fine-tuning: sample (the "
                                "model's own), digits, random inputs, or a folder/file; empty: compress only.")
        self.data_combo.setEditable(True)
        self.data_combo.addItems(DATA_SPECS)
        self.data_combo.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.data_combo.lineEdit().setPlaceholderText("none: compress and measure only")
        self.data_combo.textActivated.connect(self._data_chosen)
        self.epochs = named(QSpinBox(), "finetuneEpochs", "Fine-tuning epochs after compressing; none skips it.")
        self.epochs.setRange(0, 100)
        self.epochs.setSpecialValueText("none")
        self.epochs.valueChanged.connect(self._sync_enabled)
        heading = named(QLabel("Fine-tuning"), "runSettingsHeading")
        set_sheet(heading, "color: #5f6368; font-weight: 600; padding-top: 6px;")
        self.distill = named(QCheckBox("from original"), "distillCheck", "Train the compressed model to match "
                             "the original's outputs (knowledge distillation); needed when data has no labels.")
        self.distill.toggled.connect(self._sync_enabled)
        self.lr = _spin("learningRate", 0.0, 1.0, 1e-5, 6, "AdamW learning rate for fine-tuning; auto picks one "
                        "for the kind of model (pretrained transformers: 3e-5 with warm-up and decay).")
        self.lr.setSpecialValueText("auto")
        self.auto_hint = named(QLabel(""), "autoLrHint", "What auto resolves to for the opened model.")
        set_sheet(self.auto_hint, "color: #5f6368; font-size: 8pt;")
        self.auto_hint.setWordWrap(True)
        self.find_lr_button = named(QPushButton("Find learning rate…"), "findLrButton",
                                    "A learning-rate range test: a few training steps at growing rates, "
                                    "the loss curve, and a suggested rate.")
        self.find_lr_button.clicked.connect(lambda: self.findLrRequested.emit())
        self.temperature = _spin("temperature", 0.1, 50.0, 0.5, 1,
                                 "Softens both models' outputs; higher transfers more of the original's ranking.")
        self.alpha = _spin("alpha", 0.0, 1.0, 0.05, 2, "Weight of the original's soft targets; 1 − α: the labels.")
        for label, widget in (("Data", self.data_combo), ("", heading), ("Epochs", self.epochs),
                              ("Distill", self.distill), ("Learning rate", self.lr), ("", self.auto_hint),
                              ("", self.find_lr_button),
                              ("Temperature", self.temperature), ("Alpha", self.alpha)):
            form.addRow(label, widget) if label else form.addRow(widget)
        self.run_button = named(QPushButton(icon("run"), "Start run"), "runButton")
        self.run_button.setProperty("primary", True)  # styled by resources/style.qss
        self.run_button.clicked.connect(lambda: self.startRequested.emit())
        self.run_button.setShortcut(QKeySequence("Ctrl+Return"))  # F6 shows the panel, Ctrl+Return starts
        self.run_button.setToolTip("Start the run (Ctrl+Return)")
        self.cancel_button = named(QPushButton("Cancel"), "cancelButton")
        self.cancel_button.clicked.connect(self._cancel_clicked)
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.run_button, 1)
        outer = QVBoxLayout(self)
        outer.addLayout(form)
        outer.addSpacing(8)
        outer.addLayout(buttons)
        outer.addStretch(1)
        self.load_settings({})
        self._sync_enabled()

    def settings_dict(self) -> dict[str, Any]:
        """{"data": spec, "finetune": {...}}: the recipe's `settings`, ready for FinetuneSettings.from_dict."""
        data = self.data_combo.currentText().strip()
        lr = self.lr.value()
        finetune = {**self._extra_finetune, "epochs": self.epochs.value(), "lr": lr if lr > 0 else "auto",
                    "distill": self.distill.isChecked(), "temperature": self.temperature.value(),
                    "alpha": self.alpha.value()}
        return {"data": "" if data.endswith("…") else data, "finetune": finetune}

    def load_settings(self, settings: dict[str, Any]) -> None:
        """Fill the controls from a recipe's `settings`; missing keys get the defaults."""
        data = settings.get("data")
        if data is not None:
            self.data_combo.setEditText(str(data))
            self._last_data = str(data)
        finetune = dict(settings.get("finetune") or {})
        values = {**FINETUNE_DEFAULTS, **{k: v for k, v in finetune.items() if k in FINETUNE_DEFAULTS}}
        self._extra_finetune = {k: v for k, v in finetune.items() if k not in FINETUNE_DEFAULTS}
        self.epochs.setValue(int(values["epochs"]))
        self.lr.setValue(0.0 if values["lr"] == "auto" else float(values["lr"]))
        self.distill.setChecked(bool(values["distill"]))
        self.temperature.setValue(float(values["temperature"]))
        self.alpha.setValue(float(values["alpha"]))

    def set_own_data(self, has_own: bool) -> None:
        """"sample" means the opened model's own data: offered only when it has some (a model
        opened from a file has none, so the default becomes none: compress and measure only)."""
        text = self.data_combo.currentText().strip()
        item = self.data_combo.model().item(DATA_SPECS.index("sample"))
        item.setEnabled(has_own)
        item.setToolTip("" if has_own else "This model has no data of its own: choose digits, a folder or a file.")
        self.data_combo.setEditText(text)  # changing the item resets the edit text to it
        if not has_own and text == "sample":
            self.data_combo.setEditText("")
            self._last_data = ""
        elif has_own and not text:
            self.data_combo.setEditText("sample")
            self._last_data = "sample"

    def set_auto_hint(self, text: str) -> None:
        """What "auto" means for the opened model, e.g. "auto: 3e-05 (pretrained transformer)"."""
        self.auto_hint.setText(text)
        self.auto_hint.setToolTip(text)

    def set_lr(self, lr: float) -> None:
        """A chosen rate (never below the box's smallest step: 0 there means auto)."""
        self.lr.setValue(max(lr, 10 ** -self.lr.decimals()))

    def browse_data(self, kind: str) -> str | None:
        """Ask for the folder or file of an `imagefolder:` / `csv:` / `tensors:` spec."""
        if kind == "imagefolder":
            return open_folder(self, "Image folder (one sub-folder per class)", "data")
        return open_file(self, f"Choose the {kind} file", "data", _BROWSE[kind])

    def _data_chosen(self, text: str) -> None:
        kind = text.partition(":")[0]
        if text.endswith("…") and kind in _BROWSE:
            path = self.browse_data(kind)
            text = f"{kind}:{path}" if path else self._last_data
            self.data_combo.setEditText(text)
        self._last_data = text

    def set_running(self, running: bool) -> None:
        self._running = running
        self.cancel_button.setText("Cancel")
        self._sync_enabled()

    def _cancel_clicked(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
        self.cancelRequested.emit()

    def _sync_enabled(self) -> None:
        idle = not self._running
        self.run_button.setEnabled(idle)
        self.cancel_button.setEnabled(self._running)
        finetuning = idle and self.epochs.value() > 0
        self.data_combo.setEnabled(idle)
        self.epochs.setEnabled(idle)
        for control in (self.distill, self.lr, self.temperature, self.alpha):
            control.setEnabled(finetuning and (control in (self.distill, self.lr) or self.distill.isChecked()))
        self.find_lr_button.setEnabled(idle)
