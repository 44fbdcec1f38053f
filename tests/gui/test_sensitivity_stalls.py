"""A streaming sweep stays cheap for the GUI thread (issue 16). Counted, not timed: which rows of
the heatmap a flush repaints, whether the finished table resets the streamed one, how often the
curves chart redraws (and regenerates its axes), and whether a progress update paints at once."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QProgressBar

from studio.core.pipelines.sensitivity import SensitivityCell, SensitivityResult, SweepSetting
from studio.gui.qt_run_panel import DeferredProgressBar
from studio.gui.qt_sensitivity_curves import SensitivityCurves
from studio.gui.qt_sensitivity_model import SensitivityTableModel
from studio.gui.qt_sensitivity_panel import SensitivityPanel

SETTINGS = (SweepSetting("prune", "prune 50%", {"prune": {"mode": "unstructured", "amount": 0.5}}),
            SweepSetting("prune", "prune 90%", {"prune": {"mode": "unstructured", "amount": 0.9}}),
            SweepSetting("lowrank", "rank 50%", {"lowrank": {"rank": 0.5}}))
LAYERS = tuple(f"features.{i}" for i in range(30))


def cell(layer: str, setting: str, drop: float = 0.01) -> SensitivityCell:
    return SensitivityCell(layer, setting, drop, 0.9 - drop, saved_params=100, saved_bytes=400, saved_flops=1000)


class Paints(QObject):
    """Records the paint events (and their regions) a widget receives."""

    def __init__(self, widget) -> None:
        super().__init__()
        self.regions: list = []
        widget.installEventFilter(self)

    def eventFilter(self, _obj, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Paint:
            self.regions.append(event.region().boundingRect())
        return False


@pytest.fixture
def panel(show, qtbot):
    panel = show(SensitivityPanel(), 1300, 800)
    panel.model.plan(SETTINGS, LAYERS, 0.9, "accuracy")
    qtbot.wait(1)  # the new layout is painted
    return panel


def test_a_flush_repaints_only_the_rows_that_got_cells(qtbot, panel):
    """Before: one dataChanged over the whole table, so every flush repainted every visible cell."""
    model, view = panel.model, panel.heatmap.view
    ranges: list[tuple[int, int, int, int]] = []
    model.dataChanged.connect(lambda a, b, *_: ranges.append((a.row(), a.column(), b.row(), b.column())))
    paints = Paints(view.viewport())
    for setting in SETTINGS:
        model.add_cell(cell("features.3", setting.label))
    model.add_cell(cell("features.4", "prune 50%"))
    model.flush()
    last = model.columnCount() - 1
    assert ranges == [(3, 0, 4, last)]  # those rows (adjacent: one range), with their mean column
    assert model.changed_layers == {"features.3", "features.4"}
    qtbot.waitUntil(lambda: bool(paints.regions), timeout=2000)
    row_height = view.rowHeight(0)
    assert max(r.height() for r in paints.regions) <= 2 * row_height + 2  # two rows, not the viewport
    assert view.viewport().height() > 10 * row_height
    ranges.clear()
    for layer in ("features.9", "features.7", "features.10"):
        model.add_cell(cell(layer, "prune 90%"))
    model.flush()
    assert ranges == [(7, 0, 7, last), (9, 0, 10, last)]


def test_the_finished_table_updates_the_streamed_one_in_place(qtbot, panel):
    model = panel.model
    for layer in LAYERS[:10]:
        model.add_cell(cell(layer, "prune 50%"))
    model.flush()
    resets, before = [], model.resets
    model.modelReset.connect(lambda: resets.append(1))
    cells = tuple(cell(layer, s.label, 0.02) for layer in LAYERS for s in SETTINGS)
    model.set_result(SensitivityResult("toy", "accuracy", 0.9, 200, SETTINGS, LAYERS, cells))
    assert resets == [] and model.resets == before  # no re-layout, re-sort and full repaint
    assert model.done == len(cells) and model.index(29, 2).data() == "2.0"
    other = SensitivityResult("toy", "accuracy", 0.9, 200, SETTINGS[:2], LAYERS, cells[:2])
    model.set_result(other)  # a different layout (a table opened from a file): laid out anew
    assert resets == [1] and model.columnCount() == 3


def test_curves_redraw_only_for_cells_of_the_selected_layers(qtbot, show):
    model = SensitivityTableModel()
    curves = show(SensitivityCurves(model), 400, 300)
    model.plan(SETTINGS, LAYERS, 0.9, "accuracy")
    item = curves.getPlotItem()
    calls: list[str] = []
    for name in ("setLogMode", "setLabel"):
        original = getattr(item, name)
        setattr(item, name, lambda *a, _o=original, _n=name, **k: (calls.append(_n), _o(*a, **k))[1])
    redraws = curves.redraws
    for i, layer in enumerate(LAYERS):  # a sweep streams in; nothing selected
        model.add_cell(cell(layer, "prune 50%"))
        if i % 3 == 0:
            model.flush()
    model.flush()
    assert curves.redraws == redraws and calls == []  # before: every flush re-labelled and re-logged the axes
    curves.set_layers(["features.1"])
    assert curves.redraws == redraws + 1
    model.add_cell(cell("features.7", "prune 90%"))
    model.flush()
    assert curves.redraws == redraws + 1  # another layer's cell
    model.add_cell(cell("features.1", "prune 90%"))
    model.flush()
    assert curves.redraws == redraws + 2 and calls == []  # new points; the axes' labels stay
    assert len(curves.series()[0][2]) == 2


@pytest.mark.parametrize("bar_class, synchronous", [(QProgressBar, True), (DeferredProgressBar, False)])
def test_progress_updates_paint_with_the_next_paint_not_at_once(qtbot, show, bar_class, synchronous):
    """QProgressBar.setValue repaints inside the call (the plain bar shows what is measured)."""
    bar = show(bar_class(), 300, 30)
    bar.setRange(0, 100)
    qtbot.wait(1)
    paints = Paints(bar)
    for value in (10, 40, 70):
        bar.setValue(value)
    bar.setRange(0, 50)  # 70 is outside: QProgressBar resets, which repaints at once too
    assert bool(paints.regions) is synchronous
    if not synchronous:
        qtbot.waitUntil(lambda: bool(paints.regions), timeout=2000)  # drawn by the next paint
        assert bar.value() == -1 and bar.maximum() == 50
