"""The Sensitivity dock: what to sweep, Start/Cancel with progress and ETA, the heatmap, the
per-layer curves and "fit to target". The panel runs nothing itself: its controller turns
its requests into jobs and feeds it the sweep's events on the GUI thread."""

from __future__ import annotations

import re
import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QScrollArea, QSizePolicy, QSpinBox, QSplitter, QVBoxLayout, QWidget)

from studio.core.base.errors import StudioError
from studio.core.pipelines.sensitivity import SweepSpec, Target
from studio.gui.qt_resources import icon
from studio.core.base.units import format_duration
from studio.gui.qt_run_panel import DeferredProgressBar
from studio.gui.qt_run_settings import DATA_SPECS, named
from studio.gui.qt_sensitivity_curves import AXES, SensitivityCurves
from studio.gui.qt_sensitivity_heatmap import SensitivityHeatmap
from studio.gui.qt_sensitivity_model import SensitivityTableModel
from studio.gui.qt_theme import set_sheet

# combo label, Target.kind, placeholder
TARGETS = (("Size at most", "size", "e.g. 2MB"), ("Params kept", "params", "fraction, e.g. 0.5 or 50%"),
           ("FLOPs kept", "flops", "fraction, e.g. 0.5 or 50%"), ("Max drop", "max_drop", "pp, e.g. 1"))


def parse_settings(text: str, known: tuple[str, ...] | None = None) -> dict[str, tuple[str, ...]] | None:
    """'prune: 0.3 0.6; quantize: int8, int4' → {'prune': ('0.3', '0.6'), ...}; empty → the defaults.
    `known`: the technique keys the panel offers (default: every one with sweep settings)."""
    if known is None:
        from studio.core.pipelines.sensitivity.settings import sweepable_techniques  # imports torch: late

        known = tuple(key for key, _ in sweepable_techniques())
    out: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, colon, values = part.partition(":")
        key = key.strip().lower()
        if not colon or key not in known:
            raise StudioError(f"Settings {part!r}: write 'technique: value value …' with a technique of "
                              f"{', '.join(known)}, separated by ';'.")
        items = tuple(v for v in re.split(r"[\s,]+", values.strip()) if v)
        if not items:
            raise StudioError(f"Settings for {key} list no values.")
        out[key] = items
    return out or None


def parse_target(kind: str, text: str) -> Target:
    """The target box's text as a core Target: bytes for size, fractions for the rest."""
    raw = text.strip().lower().replace(" ", "")
    if not raw:
        raise StudioError("Enter a target value first.")
    if kind == "size":
        from studio.core.pipelines.sensitivity.report import parse_size  # the CLI's --target-size reads sizes alike

        return Target("size", parse_size(text))
    percent = raw.endswith("%") or raw.endswith("pp")
    number = raw.rstrip("%").removesuffix("pp")
    try:
        value = float(number)
    except ValueError:
        raise StudioError(f"{text!r} is not a number.") from None
    if kind == "max_drop":
        return Target("max_drop", value / 100)  # typed in percentage points
    value = value / 100 if percent else value
    if not 0 < value <= 1:
        raise StudioError(f"The {kind} kept is a fraction between 0 and 1 (or a percentage), not {text!r}.")
    return Target(kind, value)


def eta_text(done: int, total: int, elapsed: float) -> str:
    if done <= 0 or total <= done:
        return ""
    return f"{format_duration(elapsed / done * (total - done))} left"


class SensitivityPanel(QWidget):
    startRequested = Signal()
    cancelRequested = Signal()
    fitRequested = Signal(object)  # Target
    openRequested = Signal()
    saveRequested = Signal()
    referenceChanged = Signal(str)  # the setting the tree's Sensitivity column shows

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("sensitivityPanel")
        set_sheet(self, "QLabel#sweepStatus, QLabel#fitResult { color: #3c4043; }"
                           "QProgressBar#sweepProgress { max-height: 18px; text-align: center; color: #202124; }")
        self.model = SensitivityTableModel(self)
        self._running, self._t0 = False, 0.0
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(10)
        left = QWidget()
        column = QVBoxLayout(left)
        column.setContentsMargins(0, 0, 4, 0)
        column.addWidget(self._build_sweep_box())
        column.addStretch(1)
        scroll = QScrollArea()  # a short dock scrolls the controls instead of squeezing them
        scroll.setObjectName("sweepControls")
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedWidth(290)
        layout.addWidget(scroll)
        self.heatmap = SensitivityHeatmap(self.model)
        self.curves = SensitivityCurves(self.model)
        self.heatmap.layersSelected.connect(self.curves.set_layers)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        middle = QWidget()
        middle_column = QVBoxLayout(middle)
        middle_column.setContentsMargins(0, 0, 0, 0)
        middle_column.addWidget(self.heatmap, 1)
        middle_column.addWidget(self._build_fit_box())
        splitter.addWidget(middle)
        splitter.addWidget(self._with_axis_choice(self.curves))
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([860, 340])
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)
        self.set_running(False)

    @staticmethod
    def _with_axis_choice(curves: SensitivityCurves) -> QWidget:
        box = QWidget()
        column = QVBoxLayout(box)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(4)
        row = QHBoxLayout()
        key = QLabel("<span style='color:#5f6368'>● prune &nbsp;▲ low rank &nbsp;■ quantize</span>")
        key.setToolTip("One line per layer (colour) and family of settings (symbol); "
                       "structured and unstructured pruning are separate lines.")
        key.setMinimumWidth(1)  # cut when narrow, never widen the dock
        row.addStretch(1)
        row.addWidget(QLabel("x axis:"))
        combo = named(QComboBox(), "curvesAxis", "What the curves plot the drop against.")
        combo.addItems([axis[0] for axis in AXES])
        combo.currentIndexChanged.connect(curves.set_axis)
        row.addWidget(combo)
        column.addLayout(row)
        column.addWidget(curves, 1)
        column.addWidget(key, 0, Qt.AlignmentFlag.AlignHCenter)  # under the chart: the axis choice keeps its row
        return box

    def _build_sweep_box(self) -> QGroupBox:
        box = QGroupBox("Sweep")
        box.setFixedWidth(270)
        box.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Preferred)
        form = QFormLayout(box)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._technique_row = QHBoxLayout()  # filled from the technique registry once a model is open
        self.technique_checks: dict[str, QCheckBox] = {}
        form.addRow(self._technique_row)
        self.layers_edit = named(QLineEdit(), "sweepLayers", "Which layers: a glob ('features.*') or 're:regex'; "
                                 "empty sweeps every compressible layer.")
        self.layers_edit.setPlaceholderText("all compressible")
        self.settings_edit = named(QLineEdit(), "sweepSettings", "Per technique, the values to try, e.g. "
                                   "'prune: 0.25 0.5 0.75; lowrank: 0.5; quantize: int8 int4'. Empty: the defaults.")
        self.settings_edit.setPlaceholderText("defaults")
        self.data_combo = named(QComboBox(), "sweepData", "Data the drop is measured on: the model's sample "
                                "data, digits, or a folder/file (accuracy with labels, otherwise fidelity).")
        self.data_combo.setEditable(True)
        self.data_combo.addItems([spec for spec in DATA_SPECS if not spec.endswith("…")])
        self.samples = named(QSpinBox(), "sweepSamples", "Validation samples per cell: more is steadier, slower.")
        self.samples.setRange(10, 100000)
        self.samples.setSingleStep(50)
        self.samples.setValue(200)
        for label, widget in (("Layers", self.layers_edit), ("Settings", self.settings_edit),
                              ("Data", self.data_combo), ("Samples", self.samples)):
            form.addRow(label, widget)
        self.start_button = named(QPushButton(icon("run"), "Start sweep"), "sweepStart")
        self.start_button.setProperty("primary", True)
        self.start_button.clicked.connect(lambda: self.startRequested.emit())
        self.cancel_button = named(QPushButton("Cancel"), "sweepCancel")
        self.cancel_button.clicked.connect(self._cancel_clicked)
        buttons = QHBoxLayout()
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.start_button, 1)
        form.addRow(buttons)
        self.progress = named(DeferredProgressBar(), "sweepProgress")  # set per cell: never a synchronous repaint
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.status = named(QLabel("Measure how much each layer suffers from each change."), "sweepStatus")
        self.status.setWordWrap(True)
        self.status.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)
        # four lines, whatever the text: a height that followed the text re-laid out the whole dock (and
        # repainted the heatmap twice) at every status change of a sweep; the tooltip has the whole text
        self.status.setFixedHeight(4 * self.status.fontMetrics().lineSpacing() + 2)
        form.addRow(self.progress)
        form.addRow(self.status)
        self.reference_combo = named(QComboBox(), "treeReference", "The setting whose drop the layer tree's "
                                     "Sensitivity column shows, so fragile layers stand out there.")
        self.reference_combo.setEnabled(False)
        self.reference_combo.textActivated.connect(self.referenceChanged)
        form.addRow("Tree column", self.reference_combo)
        self.open_button = named(QPushButton("Open…"), "sweepOpen", "Show a saved sweep (studio sensitivity --out).")
        self.open_button.clicked.connect(lambda: self.openRequested.emit())
        self.save_button = named(QPushButton("Save…"), "sweepSave", "Save this table as JSON (for studio plan).")
        self.save_button.clicked.connect(lambda: self.saveRequested.emit())
        files = QHBoxLayout()
        files.addWidget(self.open_button)
        files.addWidget(self.save_button)
        form.addRow(files)
        return box

    def set_references(self, labels: list[str], current: str) -> None:
        self.reference_combo.clear()
        self.reference_combo.addItems(labels)
        self.reference_combo.setCurrentText(current)
        self.reference_combo.setEnabled(bool(labels))

    def _build_fit_box(self) -> QWidget:
        """One strip under the heatmap: the fit chooses from the table above it."""
        box = QWidget()
        box.setObjectName("fitStrip")
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 2, 0, 0)
        heading = QLabel("<b>Fit plan to a target:</b>")
        heading.setMinimumWidth(1)
        row.addWidget(heading, 0)
        self.target_kind = named(QComboBox(), "targetKind", "What the plan must meet; the least predicted drop wins.")
        for label, _kind, _hint in TARGETS:
            self.target_kind.addItem(label)
        self.target_kind.currentIndexChanged.connect(self._kind_changed)
        self.target_value = named(QLineEdit(), "targetValue")
        self.target_value.returnPressed.connect(self._fit_clicked)
        self.fit_button = named(QPushButton("Fit plan"), "fitButton",
                                "Choose one setting per layer that meets the target; one undoable plan edit.")
        self.fit_button.clicked.connect(self._fit_clicked)
        self.target_value.setFixedWidth(150)
        row.addWidget(self.target_kind)
        row.addWidget(self.target_value)
        row.addWidget(self.fit_button)
        self.fit_result = named(QLabel(""), "fitResult")
        self.fit_result.setWordWrap(True)
        self.fit_result.setTextFormat(Qt.TextFormat.RichText)
        row.addWidget(self.fit_result, 1)
        self._kind_changed(0)
        return box

    def set_techniques(self, techniques: tuple[tuple[str, str], ...]) -> None:
        """One checkbox per technique that has sweep settings ((key, menu label) pairs from the core
        registry, which imports torch: so it is called when a model is open, not at start-up)."""
        if tuple(self.technique_checks) == tuple(key for key, _ in techniques):
            return
        for check in self.technique_checks.values():
            self._technique_row.removeWidget(check)
            check.deleteLater()
        self.technique_checks = {}
        for key, label in techniques:
            text = label.rstrip("…. ")
            check = named(QCheckBox(text), f"sweep_{key}", f"Sweep {text.lower()} settings on every layer.")
            check.setChecked(True)
            check.setEnabled(not self._running)
            self.technique_checks[key] = check
            self._technique_row.addWidget(check)

    # --- requests --------------------------------------------------------------------------
    def spec(self) -> SweepSpec:
        """The sweep the controls describe; bad input raises StudioError (shown as a dialog)."""
        techniques = tuple(key for key, check in self.technique_checks.items() if check.isChecked())
        if not techniques:
            raise StudioError("Choose at least one technique to sweep.")
        settings = parse_settings(self.settings_edit.text(), tuple(self.technique_checks))
        if settings:
            settings = {k: v for k, v in settings.items() if k in techniques}
        return SweepSpec(techniques=techniques, layers=self.layers_edit.text().strip() or None,
                         settings=settings or None, samples=self.samples.value())

    def data_spec(self) -> str:
        return self.data_combo.currentText().strip()

    def target(self) -> Target:
        return parse_target(TARGETS[self.target_kind.currentIndex()][1], self.target_value.text())

    def _kind_changed(self, index: int) -> None:
        self.target_value.setPlaceholderText(TARGETS[index][2])

    def _fit_clicked(self) -> None:
        try:
            target = self.target()
        except StudioError as exc:
            self.fit_result.setText(f"<span style='color:#c5221f'>{exc}</span>")
            return
        self.fitRequested.emit(target)

    def _cancel_clicked(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
        self.cancelRequested.emit()

    # --- state -----------------------------------------------------------------------------
    def set_running(self, running: bool, allowed: bool = True) -> None:
        """Running: Cancel only. Idle: Start when `allowed` (no other job of the window runs)."""
        self._running = running
        self.cancel_button.setText("Cancel")
        self.cancel_button.setEnabled(running)
        self.start_button.setEnabled(not running and allowed)
        self.fit_button.setEnabled(not running and allowed and self.model.done > 0)
        self.open_button.setEnabled(not running and allowed)
        for widget in (*self.technique_checks.values(), self.layers_edit, self.settings_edit, self.data_combo,
                       self.samples):
            widget.setEnabled(not running)

    @property
    def running(self) -> bool:
        return self._running

    def started(self) -> None:
        self._t0 = time.monotonic()
        self.progress.setRange(0, 0)  # busy until the sweep says how many cells it has
        self.progress.setFormat("")
        self._set_status("Measuring the baseline…")
        self.fit_result.setText("")

    def show_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        eta = eta_text(done, total, time.monotonic() - self._t0)
        self.progress.setFormat(f"{done}/{total} cells" + (f" · {eta}" if eta else ""))

    def show_status(self, text: str) -> None:
        self._set_status(text)

    def _set_status(self, text: str) -> None:
        self.status.setText(text)
        self.status.setToolTip(text)

    def finished(self, text: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat("done")
        self._set_status(text)

    def cancelled(self, text: str) -> None:
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("cancelled")
        self._set_status(text)
