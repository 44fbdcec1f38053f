"""Export panel: choose format/precision/file, then read how the file verified and how fast it runs.

The panel only builds an `ExportRequest` and displays events; the window runs
`studio.core.pipelines.export.export` in its worker and feeds the events back through `handle_event`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QMessageBox, QProgressBar, QPushButton, QScrollArea, QVBoxLayout, QWidget)

from studio.core.base.events import Finished, StageStarted, Warning
from studio.core.pipelines.export import CALIBRATION_METHODS, FORMATS, INT8_MODES, PRECISIONS, ExportRequest
from studio.core.base.units import format_bytes
from studio.core.report.export import ExportReport
from studio.core.report.export_rows import (CANDIDATE_COLUMNS, LATENCY_COLUMNS, LATENCY_ROWS, VERIFY_ROWS,
                                            candidate_rows, latency_rows, not_faster_message, slower_message,
                                            speed_verdict_text, speedup_text,
                                            verification_rows)
from studio.core.report.rows import DASH
from studio.gui.qt_file_dialogs import open_file, save_file
from studio.gui.qt_export_tables import _cell, _table, _title

FORMAT_LABELS = {"onnx": "ONNX (ONNX Runtime)", "tflite": "TFLite (LiteRT)"}


class ExportPanel(QWidget):
    """Emits `exportRequested(ExportRequest)`; the window runs it and calls `handle_event`."""

    exportRequested = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("exportPanel")
        self._result_path: Path | None = None
        self._overwrite: QMessageBox | None = None
        layout = QVBoxLayout(self)
        layout.addWidget(self._build_form())
        row = QHBoxLayout()
        self.stage_label = QLabel("Choose a format and a file, then export.")
        self.stage_label.setObjectName("exportStage")
        self.stage_label.setWordWrap(True)
        row.addWidget(self.stage_label, 1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setFixedWidth(120)
        self.progress.setTextVisible(False)
        self.progress.hide()
        row.addWidget(self.progress)
        layout.addLayout(row)
        self.error_label = QLabel()
        self.error_label.setObjectName("inlineError")
        self.error_label.setWordWrap(True)
        self.error_label.hide()
        layout.addWidget(self.error_label)
        self.banner = QLabel()
        self.banner.setObjectName("warningBanner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        layout.addWidget(self.banner)
        layout.addWidget(self._build_results())
        layout.addStretch(1)
        self._on_precision()

    # --- construction ---------------------------------------------------------------
    def _build_form(self) -> QGroupBox:
        box = QGroupBox("Export")
        form = QFormLayout(box)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.format_combo = QComboBox()
        self.format_combo.setObjectName("exportFormat")
        for key in FORMATS:
            self.format_combo.addItem(FORMAT_LABELS.get(key, key), key)
        self.precision_combo = QComboBox()
        self.precision_combo.setObjectName("exportPrecision")
        for key in PRECISIONS:
            self.precision_combo.addItem(key, key)
        self.int8_combo = QComboBox()
        self.int8_combo.setObjectName("exportInt8Mode")
        for key in INT8_MODES:
            self.int8_combo.addItem(key, key)
        self.int8_combo.setToolTip("auto: measures dynamic and static int8 (with and without the most fragile layers "
                                   "in float) and keeps the fastest that holds 99.5 % of fp32 accuracy")
        self.calibration_combo = QComboBox()
        self.calibration_combo.setObjectName("exportCalibration")
        for key in CALIBRATION_METHODS:
            self.calibration_combo.addItem(key, key)
        self.calibration_combo.setToolTip("Static int8 calibration (ONNX Runtime: all three; TFLite: min-max)")
        for combo in (self.format_combo, self.precision_combo, self.int8_combo):
            combo.setMinimumWidth(110)
        format_row = QHBoxLayout()
        format_row.addWidget(self.format_combo)
        format_row.addStretch(1)
        precision_row = QHBoxLayout()
        precision_row.addWidget(self.precision_combo)
        precision_row.addSpacing(12)
        self.int8_label = QLabel("int8 mode")
        precision_row.addWidget(self.int8_label)
        precision_row.addWidget(self.int8_combo)
        precision_row.addSpacing(12)
        self.calibration_label = QLabel("calibration")
        precision_row.addWidget(self.calibration_label)
        precision_row.addWidget(self.calibration_combo)
        precision_row.addStretch(1)
        self.path_edit = QLineEdit()
        self.path_edit.setObjectName("exportPath")
        self.path_edit.setPlaceholderText(f"model{FORMATS[self.format()]}")
        self.browse_button = QPushButton("Browse…")
        self.browse_button.setObjectName("exportBrowse")
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(self.browse_button)
        self.data_edit = QLineEdit()
        self.data_edit.setObjectName("exportData")
        self.data_edit.setPlaceholderText("the sample's own data (or imagefolder:PATH, csv:PATH, tensors:PATH, "
                                          "random)")
        self.data_edit.setToolTip("Calibration (static int8, training split) and verification inputs (validation "
                                  "split); images: imagefolder:PATH?mean=0.485,0.456,0.406&std=0.229,0.224,0.225")
        self.keep_float_edit = QLineEdit()
        self.keep_float_edit.setObjectName("exportKeepFloat")
        self.keep_float_edit.setPlaceholderText("layers to keep in float in an int8 file, e.g. conv1, fc (globs allowed)")
        self.sensitivity_edit = QLineEdit()
        self.sensitivity_edit.setObjectName("exportSensitivity")
        self.sensitivity_edit.setPlaceholderText("rule: first layer + classifier; or a sensitivity result (.json) "
                                                 "whose most quantization-sensitive layers auto tries in float")
        self.sensitivity_edit.setToolTip("A result saved from the Sensitivity panel (or `studio sensitivity --json`) "
                                         "of this model, with quantization in its sweep")
        self.sensitivity_button = QPushButton("Browse…")
        self.sensitivity_button.setObjectName("exportSensitivityBrowse")
        sensitivity_row = QHBoxLayout()
        sensitivity_row.addWidget(self.sensitivity_edit, 1)
        sensitivity_row.addWidget(self.sensitivity_button)
        self.export_button = QPushButton("Export")
        self.export_button.setObjectName("exportButton")
        self.export_button.setDefault(True)
        self.reveal_button = QPushButton("Show file")
        self.reveal_button.setObjectName("revealButton")
        self.reveal_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.reveal_button)
        buttons.addWidget(self.export_button)
        form.addRow("Format", format_row)
        form.addRow("Precision", precision_row)
        form.addRow("File", path_row)
        form.addRow("Data", self.data_edit)
        form.addRow("Keep float", self.keep_float_edit)
        form.addRow("Float layers", sensitivity_row)
        form.addRow(buttons)
        self.format_combo.currentIndexChanged.connect(self._on_format)
        self.precision_combo.currentIndexChanged.connect(self._on_precision)
        self.browse_button.clicked.connect(self._browse)
        self.sensitivity_button.clicked.connect(self._browse_sensitivity)
        self.export_button.clicked.connect(self.request_export)
        self.reveal_button.clicked.connect(self.reveal)
        return box

    def _build_results(self) -> QWidget:
        box = QGroupBox("Verification and speed")
        self.results_box = box
        layout = QHBoxLayout(box)
        self.results_table = _table("exportResults", len(VERIFY_ROWS), ("Value",))
        self.results_table.setVerticalHeaderLabels(list(VERIFY_ROWS))
        self.results_table.horizontalHeader().hide()
        self.latency_table = _table("exportLatency", len(LATENCY_ROWS), LATENCY_COLUMNS)
        self.latency_table.setVerticalHeaderLabels([label.format(runtime="Runtime") for _, label in LATENCY_ROWS])
        self.speedup_label = QLabel()
        self.speedup_label.setObjectName("hint")
        self.speedup_label.setWordWrap(True)
        left = QVBoxLayout()
        left.addWidget(_title("Outputs vs PyTorch"))
        left.addWidget(self.results_table)
        left.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(_title("Latency at batch 1"))
        right.addWidget(self.latency_table)
        right.addWidget(self.speedup_label)
        right.addStretch(1)
        layout.addLayout(left, 2)
        layout.addSpacing(8)
        layout.addLayout(right, 5)
        outer = QWidget()
        column = QVBoxLayout(outer)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(box)
        self.candidates_box = QGroupBox("int8 candidates (held-out accuracy, timed next to the fp32 file)")
        candidates = QVBoxLayout(self.candidates_box)
        self.candidates_table = _table("exportCandidates", 0, CANDIDATE_COLUMNS)
        self.choice_label = QLabel()
        self.choice_label.setObjectName("hint")
        self.choice_label.setWordWrap(True)
        candidates.addWidget(self.candidates_table)
        candidates.addWidget(self.choice_label)
        self.candidates_box.hide()
        column.addWidget(self.candidates_box)
        self._clear_results()
        return outer

    # --- fields ---------------------------------------------------------------------
    def format(self) -> str:
        return self.format_combo.currentData()

    def precision(self) -> str:
        return self.precision_combo.currentData()

    def int8_mode(self) -> str:
        return self.int8_combo.currentData()

    def calibration(self) -> str:
        return self.calibration_combo.currentData()

    def data_spec(self) -> str | None:
        """Data for calibration/verification; None means the sample's own (or random inputs)."""
        return self.data_edit.text().strip() or None

    def set_output(self, path: str | Path) -> None:
        """Propose a file (e.g. beside the model); its suffix follows the chosen format."""
        self.path_edit.setText(str(Path(path).with_suffix(FORMATS[self.format()])))

    def set_format(self, key: str) -> None:
        self.format_combo.setCurrentIndex(self.format_combo.findData(key))

    def set_precision(self, key: str) -> None:
        self.precision_combo.setCurrentIndex(self.precision_combo.findData(key))

    def _on_format(self, *_: Any) -> None:
        suffix = FORMATS[self.format()]
        self.path_edit.setPlaceholderText(f"model{suffix}")
        text = self.path_edit.text().strip()
        if text and Path(text).suffix in FORMATS.values():
            self.path_edit.setText(str(Path(text).with_suffix(suffix)))

    def _on_precision(self, *_: Any) -> None:
        int8 = self.precision() == "int8"
        for widget in (self.int8_combo, self.int8_label, self.calibration_combo, self.calibration_label,
                       self.sensitivity_edit, self.sensitivity_button):
            widget.setEnabled(int8)

    def _browse(self) -> None:
        suffix = FORMATS[self.format()]
        path = save_file(self, "Export to", "exports", self.path_edit.text() or f"model{suffix}",
                         f"{FORMAT_LABELS[self.format()]} (*{suffix})")
        if path:
            self.path_edit.setText(str(Path(path).with_suffix(suffix)))

    def _browse_sensitivity(self) -> None:
        path = open_file(self, "Sensitivity result", "sensitivity", "Sensitivity result (*.json)")
        if path:
            self.sensitivity_edit.setText(path)

    # --- request --------------------------------------------------------------------
    def request(self, force: bool = False) -> ExportRequest:
        return ExportRequest(self.format(), Path(self.path_edit.text().strip()).expanduser(), self.precision(),
                             force=force, int8_mode=self.int8_mode(), calibration=self.calibration(),
                             keep_float=tuple(n.strip() for n in self.keep_float_edit.text().split(",") if n.strip()),
                             sensitivity=Path(self.sensitivity_edit.text().strip()).expanduser()
                             if self.sensitivity_edit.text().strip() else None)

    def request_export(self) -> None:
        """Validate, ask before replacing a file, then emit `exportRequested`."""
        text = self.path_edit.text().strip()
        suffix = FORMATS[self.format()]
        if not text:
            self.show_error("Choose the file to export to.")
            return
        if Path(text).suffix != suffix:
            self.show_error(f"A {self.format()} file should end in {suffix}.")
            return
        self.error_label.hide()
        request = self.request()
        if request.out.exists():
            self._ask_overwrite(request)
        else:
            self.exportRequested.emit(request)

    def _ask_overwrite(self, request: ExportRequest) -> None:
        box = QMessageBox(QMessageBox.Icon.Question, "Replace file?",
                          f"{request.out.name} already exists in {request.out.parent}.\nReplace it?",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("overwriteDialog")
        box.button(QMessageBox.StandardButton.Yes).setText("Replace")
        box.setDefaultButton(QMessageBox.StandardButton.Cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        def done(_: int) -> None:
            if box.clickedButton() is box.button(QMessageBox.StandardButton.Yes):
                self.exportRequested.emit(replace(request, force=True))
            self._overwrite = None

        box.finished.connect(done)
        self._overwrite = box
        box.open()

    # --- progress -------------------------------------------------------------------
    def set_busy(self, busy: bool) -> None:
        """While exporting the inputs are frozen; a new export clears the last results."""
        for widget in (self.format_combo, self.precision_combo, self.path_edit, self.browse_button,
                       self.data_edit, self.keep_float_edit, self.export_button):
            widget.setEnabled(not busy)
        for widget in (self.int8_combo, self.calibration_combo, self.sensitivity_edit, self.sensitivity_button):
            widget.setEnabled(not busy and self.precision() == "int8")
        self.progress.setVisible(busy)
        if busy:
            self._clear_results()
            self.error_label.hide()
            self.banner.hide()
            self.reveal_button.setEnabled(False)
            self.stage_label.setText("Starting export…")

    def handle_event(self, event: object) -> None:
        if isinstance(event, StageStarted):
            detail = f" — {event.detail}" if event.detail else ""
            self.stage_label.setText(f"{event.name.capitalize()}{detail}…")
        elif isinstance(event, Warning):
            self._warn(event.message)
        elif isinstance(event, Finished):
            self.show_result(event.result.path, event.result.report)

    def show_result(self, path: Path, report: ExportReport) -> None:
        self._result_path = Path(path)
        self.stage_label.setText(f"Exported {self._result_path.name} ({format_bytes(report.file_bytes)}), verified in "
                                 f"{report.runtime}.")
        self._fill_verification(report)
        self._fill_latency(report)
        self._fill_candidates(report)
        if report.slower_than_fp32:
            self._warn(slower_message(report))
        elif not_faster_message(report):
            self._warn(not_faster_message(report))
        elif report.slower_than_uncompressed:
            self._warn("Slower than the uncompressed PyTorch model at batch 1 — compression saved size, "
                       "not time, on this runtime. Try another precision or format.")
        self.reveal_button.setEnabled(self._result_path.exists())
        QTimer.singleShot(0, self._reveal_results)  # once the filled tables have their heights

    def _reveal_results(self) -> None:
        """Scroll the dock to the verification: at 1366×768 it sits below the form."""
        area = self.parentWidget()
        while area is not None and not isinstance(area, QScrollArea):
            area = area.parentWidget()
        if area is not None:
            area.ensureWidgetVisible(self.results_box, 0, 0)

    def show_error(self, message: str) -> None:
        self.error_label.setText(message)
        self.error_label.show()
        self.progress.hide()

    def _warn(self, message: str) -> None:
        previous = self.banner.text() if self.banner.isVisibleTo(self) else ""
        if message not in previous:
            self.banner.setText(f"{previous}\n⚠ {message}".strip())
        self.banner.show()

    # --- tables ---------------------------------------------------------------------
    def _clear_results(self) -> None:
        for row in range(len(VERIFY_ROWS)):
            self.results_table.setItem(row, 0, _cell(DASH))
        for row in range(len(LATENCY_ROWS)):
            for column in range(len(LATENCY_COLUMNS)):
                self.latency_table.setItem(row, column, _cell(DASH))
        self.speedup_label.clear()
        self.candidates_table.setRowCount(0)
        self.choice_label.clear()
        self.candidates_box.hide()

    def _fill_candidates(self, report: ExportReport) -> None:
        rows = candidate_rows(report)
        self.candidates_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.candidates_table.setItem(r, c, _cell(text, Qt.AlignmentFlag.AlignLeft if c == 0
                                                          else Qt.AlignmentFlag.AlignRight))
        self.choice_label.setText("\n".join(text for text in (
            f"Choice: {report.choice}" if report.choice else "",
            f"Float layers tried: {report.float_layers_rule}" if report.float_layers_rule else "") if text))
        self.candidates_table.updateGeometry()
        self.candidates_box.setVisible(bool(rows))

    def _fill_verification(self, report: ExportReport) -> None:
        for row, (_, text) in enumerate(verification_rows(report)):
            self.results_table.setItem(row, 0, _cell(text))

    def _fill_latency(self, report: ExportReport) -> None:
        rows = latency_rows(report)
        self.latency_table.setVerticalHeaderLabels([label for label, _ in rows])
        for row, (_, cells) in enumerate(rows):
            for column, text in enumerate(cells):
                self.latency_table.setItem(row, column, _cell(text))
        self.speedup_label.setText("\n".join(t for t in (speedup_text(report), speed_verdict_text(report)) if t))

    def reveal(self) -> None:
        """Open the folder holding the exported file in the system file manager."""
        if self._result_path is not None:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self._result_path.parent)))
