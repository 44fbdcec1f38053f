"""Compare view: the original against the compressed model after a run or a plain compression.

The rows are plain data (`compare_rows`, `headline`) computed from the report dict, so they
are tested without Qt; the table is a small `QAbstractTableModel` over them and the per-layer
chart is a horizontal bar chart, whose layer names stay readable for dozens of layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QFont
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QListWidget, QPushButton,
                               QSplitter, QTableView, QVBoxLayout, QWidget)

from studio.core.report.rows import latency_is_simulated
from studio.core.base.units import format_bytes, format_count, format_flops, format_percent, speed_text
from studio.gui.qt_layer_bars import AFTER_COLOUR, BEFORE_COLOUR, LayerBars, abbreviate, per_layer

DASH, MINUS = "—", "−"
BETTER, WORSE, NEUTRAL = QColor("#188038"), QColor("#c5221f"), QColor("#5f6368")
COLUMNS = ("Metric", "Original", "Compressed", "Change")
_Index = QModelIndex | QPersistentModelIndex


def _ms(value: float) -> str:
    return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"


# label, section, key, formatter, lower is better, relative tolerance under which a change is "same"
FIGURES: tuple[tuple[str, str, str, Callable[[float], str], bool, float], ...] = (
    ("Params", "params", "", format_count, True, 1e-3),
    ("Non-zero params", "nonzero_params", "", format_count, True, 1e-3),
    ("Size", "bytes", "", format_bytes, True, 1e-3),
    ("Compressed size (zlib)", "compressed_bytes", "", format_bytes, True, 1e-3),
    ("FLOPs", "flops", "", format_flops, True, 1e-3),
    ("Accuracy", "accuracy", "pp", format_percent, False, 1e-3),
    ("Loss", "loss", "", lambda v: f"{v:.4g}", True, 1e-3),
    ("Latency (ms)", "latency_ms", "", _ms, True, 0.05),  # timing noise: under 5% is "same"
)
FIDELITY: tuple[tuple[str, str, Callable[[float], str]], ...] = (
    ("Top-1 agreement", "top1_agreement", format_percent),
    ("Cosine", "cosine", lambda v: f"{v:.4f}"),
    ("Max |diff|", "max_abs", lambda v: f"{v:.3g}"),
    ("KL", "kl", lambda v: f"{v:.4g}"),
)


@dataclass(frozen=True)
class CompareRow:
    metric: str
    original: str
    compressed: str
    change: str = ""
    verdict: int = 0  # +1 better, -1 worse, 0 same or not comparable
    tooltip: str = ""


def change_text(before: float, after: float, kind: str = "", tolerance: float = 1e-3) -> str:
    """'−62.0%' for a relative change, '67.3×' for a large growth, '−1.2 pp' for fractions."""
    if kind == "pp":
        diff = 100.0 * (after - before)
        return "±0 pp" if abs(diff) < 0.05 else f"{'+' if diff > 0 else MINUS}{abs(diff):.1f} pp"
    if before == 0:
        return DASH
    ratio = after / before
    if abs(ratio - 1) < tolerance:
        return "±0%"
    if ratio >= 2:
        return f"{ratio:.1f}×"
    return f"{'+' if ratio > 1 else MINUS}{format_percent(abs(ratio - 1))}"


def compare_rows(report: dict[str, Any]) -> list[CompareRow]:
    """The table's rows: figures present on both sides, then output fidelity."""
    before, after = report.get("before") or {}, report.get("after") or {}
    rows = []
    for label, key, kind, fmt, lower_better, tolerance in FIGURES:
        if before.get(key) is None or after.get(key) is None:
            continue
        b, a = float(before[key]), float(after[key])
        same = abs(a - b) < 5e-4 if kind == "pp" else (b == a or (b != 0 and abs(a / b - 1) < tolerance))
        verdict = 0 if same else (1 if (a < b) == lower_better else -1)
        ratio = f"{a / b:.3g}× the original" if b else ""
        rows.append(CompareRow(label, fmt(b), fmt(a), change_text(b, a, kind, tolerance), verdict,
                               f"{label}: {b:g} → {a:g}" + (f" ({ratio})" if ratio else "")))
    fidelity = report.get("fidelity") or {}
    samples = fidelity.get("samples")
    for label, key, fmt in FIDELITY:
        if fidelity.get(key) is not None:
            note = f"compressed vs original outputs on {samples} samples" if samples else "compressed vs original"
            rows.append(CompareRow(label, DASH, fmt(float(fidelity[key])), "", 0, f"{label}: {note}"))
    return rows


def headline(report: dict[str, Any]) -> str:
    """One line a reader takes away: '3.8× smaller · accuracy 99.1% → 98.7% · 1.9× fewer FLOPs'."""
    before, after = report.get("before") or {}, report.get("after") or {}
    parts = []

    def ratio(key: str) -> float | None:
        b, a = before.get(key), after.get(key)
        return b / a if b and a else None

    size, zipped = ratio("bytes"), ratio("compressed_bytes")
    if size and size >= 1.05:
        parts.append(f"{size:.1f}× smaller")
    elif zipped and zipped >= 1.05:
        parts.append(f"{zipped:.1f}× smaller zipped")
    elif size:
        parts.append("same size" if size > 0.95 else f"{1 / size:.1f}× larger")
    if before.get("accuracy") is not None and after.get("accuracy") is not None:
        parts.append(f"accuracy {format_percent(before['accuracy'])} → {format_percent(after['accuracy'])}")
    elif (report.get("fidelity") or {}).get("top1_agreement") is not None:
        parts.append(f"{format_percent(report['fidelity']['top1_agreement'])} top-1 agreement")
    flops = ratio("flops")
    if flops and flops >= 1.05:
        parts.append(f"{flops:.1f}× fewer FLOPs")
    if report.get("latency"):  # interleaved timing with an interval: noise reads "same speed"
        parts.append(speed_text(report["latency"]))
    return " · ".join(parts) or "Compressed"


class CompareTableModel(QAbstractTableModel):
    """Read-only rows of `compare_rows`; numbers right-aligned, the change coloured by verdict."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.rows: list[CompareRow] = []
        self._bold = QFont()
        self._bold.setBold(True)

    def set_rows(self, rows: list[CompareRow]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(COLUMNS):
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.TextAlignmentRole:
                return int((Qt.AlignmentFlag.AlignLeft if section == 0 else Qt.AlignmentFlag.AlignRight)
                           | Qt.AlignmentFlag.AlignVCenter)
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self.rows):
            return None
        row, column = self.rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return (row.metric, row.original, row.compressed, row.change)[column]
        if role == Qt.ItemDataRole.TextAlignmentRole:
            horizontal = Qt.AlignmentFlag.AlignLeft if column == 0 else Qt.AlignmentFlag.AlignRight
            return int(horizontal | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and column == 3:
            return BETTER if row.verdict > 0 else WORSE if row.verdict < 0 else NEUTRAL
        if role == Qt.ItemDataRole.FontRole and column == 3 and row.verdict:
            return self._bold
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.tooltip or None
        return None


class CompareView(QWidget):
    """Headline, figures table, per-layer bars, warnings and Keep / Save… / Discard."""

    keepRequested = Signal()
    saveRequested = Signal()
    discardRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        self.setStyleSheet(
            "QLabel#compareHeadline { font-size: 14pt; font-weight: 600; color: #202124; }"
            "QLabel#compareSubline { color: #5f6368; }"
            "QLabel#warningsTitle { color: #9a6700; font-weight: 600; }"
            "QListWidget#compareWarnings { background: #fef7e0; border: 1px solid #f9d77e; border-radius: 6px;"
            " color: #7a4f01; }")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 10, 10, 10)
        layout.setSpacing(8)
        self.headline = QLabel()
        self.headline.setObjectName("compareHeadline")
        self.headline.setWordWrap(True)
        self.subline = QLabel()
        self.subline.setObjectName("compareSubline")
        self.subline.setWordWrap(True)
        layout.addWidget(self.headline)
        layout.addWidget(self.subline)
        self.prediction = QLabel()  # sensitivity's predicted vs measured drop and size (issue 10)
        self.prediction.setObjectName("comparePrediction")
        self.prediction.setWordWrap(True)
        self.prediction.setStyleSheet("background: #e8f0fe; border-radius: 6px; padding: 5px 8px; color: #174ea6;")
        self.prediction.hide()
        self._predicted: Any = None
        self._report: dict[str, Any] = {}
        layout.addWidget(self.prediction)

        self.model = CompareTableModel(self)
        self.table = QTableView()
        self.table.setObjectName("compareTable")
        self.table.setModel(self.model)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.setShowGrid(False)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        for column in (1, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(90)
        self.table.setMinimumWidth(470)
        header.setHighlightSections(False)
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.warnings_title = QLabel()
        self.warnings_title.setObjectName("warningsTitle")
        self.warnings = QListWidget()
        self.warnings.setObjectName("compareWarnings")
        self.warnings.setWordWrap(True)
        self.warnings.setMaximumHeight(110)
        self.warnings.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.warnings.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.table, 1)
        left_layout.addWidget(self.warnings_title)
        left_layout.addWidget(self.warnings)

        self.bars = LayerBars()
        self.bars_before, self.bars_after = self.bars.bars_before, self.bars.bars_after

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        chart = QWidget()
        chart_layout = QVBoxLayout(chart)
        chart_layout.setContentsMargins(0, 0, 0, 0)
        chart_layout.setSpacing(4)
        title = QLabel(f"<b>Parameters per layer</b> &nbsp; <span style='color:{BEFORE_COLOUR}'>■</span> original"
                       f" &nbsp;<span style='color:{AFTER_COLOUR}'>■</span> compressed")
        title.setObjectName("layerBarsTitle")
        title.setToolTip("Scroll over the chart to zoom into the layers; hover a bar for the layer's details.")
        chart_layout.addWidget(title)
        chart_layout.addWidget(self.bars, 1)
        splitter.addWidget(chart)
        splitter.setStretchFactor(0, 1)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([530, 470])
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        self.discard_button = QPushButton("Discard")
        self.discard_button.setObjectName("discardButton")
        self.discard_button.setToolTip("Forget the compressed model; the original stays current.")
        self.save_button = QPushButton("Save…")
        self.save_button.setObjectName("saveButton")
        self.save_button.setToolTip("Save the compressed model, its recipe and this report to a folder.")
        self.keep_button = QPushButton("Keep as current model")
        self.keep_button.setObjectName("keepButton")
        self.keep_button.setProperty("primary", True)  # styled by resources/style.qss
        self.keep_button.setToolTip("Continue working on the compressed model (export it, compress it further).")
        for button, signal in ((self.discard_button, self.discardRequested), (self.save_button, self.saveRequested),
                               (self.keep_button, self.keepRequested)):
            button.clicked.connect(lambda _checked=False, s=signal: s.emit())
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.set_report(None)

    def set_report(self, report: dict[str, Any] | None) -> None:
        """Show a run's report; None clears the view and disables the buttons."""
        report = report or {}
        self._report = report
        self._show_prediction()
        self.model.set_rows(compare_rows(report) if report else [])
        self.headline.setText(headline(report) if report else "No compressed model yet")
        self.subline.setText(self._subline(report) if report else
                             "Run a plan to compare the compressed model with the original here.")
        warnings = [str(w) for w in report.get("warnings") or []]
        self.warnings.clear()
        self.warnings.addItems(warnings)
        self.warnings_title.setText(f"Warnings ({len(warnings)})")
        self.warnings.setVisible(bool(warnings))
        self.warnings_title.setVisible(bool(warnings))
        self._set_layers(list(report.get("layers") or []))
        for button in (self.keep_button, self.save_button, self.discard_button):
            button.setEnabled(bool(report))

    def set_prediction(self, prediction: Any) -> None:
        """What the sensitivity table predicts for the plan (None: nothing), shown next to the measurement."""
        self._predicted = prediction
        self._show_prediction()

    def _show_prediction(self) -> None:
        from studio.gui.qt_sensitivity_plan import predicted_vs_measured

        text = predicted_vs_measured(self._predicted, self._report)
        self.prediction.setText(text)
        self.prediction.setVisible(bool(text))

    @staticmethod
    def _subline(report: dict[str, Any]) -> str:
        parts = [str(report.get("model") or report.get("source") or "")]
        if report.get("data"):
            parts.append(f"evaluated on {report['data']}")
        samples = (report.get("fidelity") or {}).get("samples")
        if samples:
            parts.append(f"fidelity on {samples} samples")
        epochs = ((report.get("settings") or {}).get("finetune") or {}).get("epochs")
        if epochs:
            parts.append(f"fine-tuned {epochs} epoch{'s' if epochs != 1 else ''}")
        if latency_is_simulated(report):
            parts.append("latency is PyTorch's with simulated quantization: export to measure the runtime")
        layers = per_layer(list(report.get("layers") or []))
        if layers:
            changed = sum(1 for layer in layers if not layer.get("skipped"))
            parts.append(f"{changed} of {len(layers)} layer(s) changed")
        return " · ".join(p for p in parts if p)

    def _set_layers(self, layers: list[dict[str, Any]]) -> None:
        self.bars.set_layers(layers)


__all__ = ["CompareRow", "CompareTableModel", "CompareView", "abbreviate", "change_text", "compare_rows", "headline"]
