"""The sensitivity dock's pieces on hand-made tables: input parsing, the heatmap model (live
filling, colours, the keep-float inverse view), sorting rows by robustness, the curves and the
predicted-vs-measured line. The real sweep in the window is in test_sensitivity_window.py."""

from __future__ import annotations

import math

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from studio.core.base.errors import StudioError
from studio.core.pipelines.sensitivity import SensitivityCell, SensitivityResult, SweepSetting
from studio.core.pipelines.sensitivity.result import INVERSE_SETTING
from studio.gui.qt_sensitivity_model import SORT_ROLE, SensitivityTableModel, drop_colour, format_drop
from studio.gui.qt_sensitivity_panel import SensitivityPanel, eta_text, parse_settings, parse_target
from studio.gui.qt_sensitivity_plan import Prediction, predicted_vs_measured
from tests.gui.role_batches import batched, one_by_one

SETTINGS = (SweepSetting("prune", "prune 50%", {"prune": {"mode": "unstructured", "amount": 0.5}}),
            SweepSetting("prune", "prune 90%", {"prune": {"mode": "unstructured", "amount": 0.9}}),
            SweepSetting("quantize", "int8", {"quantize": {"dtype": "int8", "activations": None}}))
LAYERS = ("a", "b", "c")
DROPS = {("a", "prune 50%"): 0.01, ("a", "prune 90%"): 0.20, ("a", "int8"): 0.0,
         ("b", "prune 50%"): 0.00, ("b", "prune 90%"): 0.02, ("b", "int8"): 0.001,
         ("c", "prune 50%"): 0.05, ("c", "prune 90%"): 0.40, ("c", "int8"): 0.03}


def cell(layer: str, setting: str, drop: float) -> SensitivityCell:
    return SensitivityCell(layer, setting, drop, 0.95 - drop, saved_params=100, saved_bytes=400 * (1 + len(setting)),
                           saved_flops=1000)


def result() -> SensitivityResult:
    cells = tuple(cell(layer, s, d) for (layer, s), d in DROPS.items())
    inverse = (cell("a", INVERSE_SETTING, 0.02), cell("b", INVERSE_SETTING, 0.04), cell("c", INVERSE_SETTING, 0.01))
    return SensitivityResult("toy", "accuracy", 0.95, 200, SETTINGS, LAYERS, cells, inverse, all_int8=0.90)


def test_parse_settings_and_targets():
    assert parse_settings("") is None
    assert parse_settings("prune: 0.3 0.6; quantize: int8, int4") == {"prune": ("0.3", "0.6"),
                                                                       "quantize": ("int8", "int4")}
    with pytest.raises(StudioError):
        parse_settings("shrink: 0.5")
    assert parse_target("size", "2MB").value == 2e6
    assert parse_target("size", "1.5 MiB").value == 1.5 * 2**20
    assert parse_target("params", "50%").value == 0.5 and parse_target("flops", "0.25").value == 0.25
    assert parse_target("max_drop", "1").value == pytest.approx(0.01)  # typed in percentage points
    for kind, text in (("size", "big"), ("params", "2"), ("params", ""), ("max_drop", "x")):
        with pytest.raises(StudioError):
            parse_target(kind, text)
    assert eta_text(10, 40, 5.0) == "0:15 left" and eta_text(0, 40, 1.0) == ""


def test_table_fills_live_and_throttles(qtbot, qtmodeltester):
    model = SensitivityTableModel()
    model.plan(SETTINGS, LAYERS, 0.95, "accuracy")
    qtmodeltester.check(model)
    assert model.columnCount() == len(SETTINGS) + 2  # + keep float (int8 swept) + mean drop
    assert model.index(0, 0).data() is None and model.index(0, 0).data(SORT_ROLE) == math.inf
    with qtbot.waitSignal(model.cellsChanged, timeout=2000):
        for (layer, setting), drop in DROPS.items():
            model.add_cell(cell(layer, setting, drop))
    assert model.index(2, 1).data() == "40.0"  # c · prune 90%: 0.40 → 40.0 pp
    assert model.index(2, 1).data(Qt.ItemDataRole.BackgroundRole) == drop_colour(0.40, "accuracy")
    assert "saves 100 params" in model.index(2, 1).data(Qt.ItemDataRole.ToolTipRole)
    mean_c = (0.05 + 0.40 + 0.03) / 3
    assert model.index(2, 4).data(SORT_ROLE) == pytest.approx(mean_c)
    assert model.index(2, 3).data() == ""  # keep float: known only with the all-int8 reference
    qtmodeltester.check(model)


def test_result_with_inverse_view(qtbot):
    model = SensitivityTableModel()
    model.set_result(result())
    # all int8 drops 0.95 - 0.90 = 5 pp; 'b' in float still drops 4 pp, so keeping it wins back 1 pp
    assert model.keep_float_gain("b") == pytest.approx(0.01)
    assert model.keep_float_gain("c") == pytest.approx(0.04)
    assert model.index(2, 3).data() == "4.0"
    assert "wins back 4.0 pp" in model.index(2, 3).data(Qt.ItemDataRole.ToolTipRole)
    assert format_drop(-0.0004, "accuracy") == "0.0" and format_drop(-0.02, "accuracy") == "−2.0"
    assert drop_colour(0.0, "accuracy") != drop_colour(0.01, "accuracy") != drop_colour(0.2, "accuracy")


def test_a_delegate_s_batched_roles_equal_the_single_roles_in_every_kind_of_cell(qtbot):
    """multiData (one call per painted cell) answers what data() answers, role for role: pending,
    measured, failed, keep-float and mean cells, and through the heatmap's sort proxy."""
    model = SensitivityTableModel()
    model.plan(SETTINGS, LAYERS, 0.95, "accuracy")
    model.add_cell(cell("a", "prune 50%", 0.01))
    model.add_cell(SensitivityCell("b", "int8", error="no weights"))
    model.flush()
    kinds = set()
    for result_set in (False, True):
        if result_set:
            model.set_result(result())
        for row in range(model.rowCount()):
            for column in range(model.columnCount()):
                index = model.index(row, column)
                assert batched(model, index) == one_by_one(model, index)
                kinds.add((model.column_kind(column), index.data(), index.data(Qt.ItemDataRole.BackgroundRole).name()))
    assert {"", "n/a", "1.0", "20.0"} <= {text for _, text, _ in kinds} and len({k for k, _, _ in kinds}) == 3
    assert batched(model, model.index(99, 0)) == dict.fromkeys(batched(model, model.index(0, 0)))  # invalid: nothing
    panel = SensitivityPanel()
    qtbot.addWidget(panel)
    panel.model.set_result(result())
    proxy = panel.heatmap.proxy
    panel.heatmap.sort_rows("most fragile first")
    for row in range(proxy.rowCount()):
        index = proxy.index(row, 1)
        assert batched(proxy, index) == one_by_one(panel.model, proxy.mapToSource(index))


def test_heatmap_cells_paint_their_heat_colour_text_and_frames(qtbot, show):
    """The heatmap paints its cells itself (text laid out once per string): each in its heat colour
    with the drop written in it, the plan's cell framed dark, a selected one in the accent colour."""
    panel = show(SensitivityPanel(), 1000, 330)
    panel.model.set_result(result())
    heatmap, view = panel.heatmap, panel.heatmap.view
    heatmap.set_chosen({"b": {"prune 90%"}})
    view.selectionModel().select(heatmap.index_of("c", "prune 50%"), view.selectionModel().SelectionFlag.ClearAndSelect)
    image = view.viewport().grab().toImage()

    def rect(layer, label):
        return view.visualRect(heatmap.index_of(layer, label))

    def dark_pixels(r):
        return sum(image.pixelColor(x, y).lightness() < 110 for x in range(r.left() + 3, r.right() - 2)
                   for y in range(r.top() + 3, r.bottom() - 2))

    plain = rect("a", "prune 90%")
    assert image.pixelColor(plain.left() + 2, plain.top() + 2) == drop_colour(0.20, "accuracy")
    assert dark_pixels(plain) > 10  # "20.0"
    planned = rect("b", "prune 90%")
    assert image.pixelColor(planned.left() + 1, planned.center().y()).lightness() < 60
    assert image.pixelColor(planned.left() + 4, planned.top() + 4) == drop_colour(0.02, "accuracy")
    selected = rect("c", "prune 50%")
    assert QColor("#2f6fde") in [image.pixelColor(selected.left() + dx, selected.center().y()) for dx in (0, 1)]
    assert image.pixelColor(selected.left() + 3, selected.top() + 3) == drop_colour(0.05, "accuracy")
    view.setColumnWidth(1, 22)  # text wider than its cell: painted (elided) the styled way, same colour
    image = view.viewport().grab().toImage()
    narrow = rect("a", "prune 90%")
    assert narrow.width() < 30 and image.pixelColor(narrow.left() + 2, narrow.top() + 2) == drop_colour(0.20, "accuracy")
    panel.model.plan(SETTINGS, LAYERS, 0.95, "accuracy")  # a new sweep: pending cells, no text
    image = view.viewport().grab().toImage()
    pending = rect("a", "prune 90%")
    assert image.pixelColor(pending.left() + 2, pending.top() + 2) == panel.model.index(0, 1).data(
        Qt.ItemDataRole.BackgroundRole) and dark_pixels(pending) == 0


def test_rows_sort_by_robustness_and_curves(qtbot, show):
    panel = show(SensitivityPanel(), 1200, 420)
    panel.model.set_result(result())
    panel.heatmap.sort_rows("most robust first")
    means = {layer: sum(DROPS[(layer, s.label)] for s in SETTINGS) / 3 for layer in LAYERS}
    assert panel.heatmap.layer_order() == sorted(LAYERS, key=means.get)
    panel.heatmap.sort_rows("most fragile first")
    assert panel.heatmap.layer_order() == sorted(LAYERS, key=means.get, reverse=True)
    panel.heatmap.sort_rows("model order")
    assert panel.heatmap.layer_order() == list(LAYERS)

    view = panel.heatmap.view
    with qtbot.waitSignal(panel.heatmap.layersSelected, timeout=2000):
        view.selectionModel().select(panel.heatmap.index_of("c", "prune 50%"),
                                     view.selectionModel().SelectionFlag.ClearAndSelect)
    series = panel.curves.series()
    assert [(layer, technique) for layer, technique, _, _ in series] == [("c", "prune"), ("c", "quantize")]
    layer, _, xs, ys = series[0]
    assert xs == sorted(xs) and ys == pytest.approx([100 * DROPS[("c", "prune 50%")], 100 * DROPS[("c", "prune 90%")]])
    assert not panel.curves.hint.isVisible()


def test_predicted_vs_measured_line():
    prediction = Prediction("accuracy", 0.012, 3, (), bytes=2_000_000, params=500_000)
    report = {"before": {"accuracy": 0.98, "bytes": 8_000_000}, "after": {"accuracy": 0.965, "bytes": 2_100_000,
                                                                      "params": 520_000}}
    text = predicted_vs_measured(prediction, report)
    assert "predicted 1.2 pp" in text and "measured <b>1.5 pp</b>" in text
    assert "size predicted 2 MB" in text and "2.1 MB" in text
    assert predicted_vs_measured(None, report) == ""
    assert predicted_vs_measured(Prediction("accuracy", math.nan, 1, ("x",)), report) == ""


def test_technique_checkboxes_come_from_the_registry(qtbot):
    """The panel names no technique: its checkboxes are the registered ones that have sweep settings."""
    from studio.core.pipelines.sensitivity.settings import sweepable_techniques
    from studio.core.techniques import all_techniques

    panel = SensitivityPanel()
    qtbot.addWidget(panel)
    assert panel.technique_checks == {}
    expected = [key for key, technique in all_techniques().items() if technique.sweep_defaults]
    panel.set_techniques(sweepable_techniques())
    assert list(panel.technique_checks) == expected and expected
    assert all(check.isChecked() and "…" not in check.text() for check in panel.technique_checks.values())
    first = expected[0]
    panel.technique_checks[first].setChecked(False)
    panel.set_techniques(sweepable_techniques())  # the same list again keeps the user's choices
    assert not panel.technique_checks[first].isChecked()
    assert set(panel.spec().techniques) == set(expected) - {first}
    with pytest.raises(StudioError, match="technique of"):
        parse_settings(f"{first}: 0.5", tuple(expected[1:]))
