"""The run charts read well when a run is short or empty (issue: a single point gave an x axis of
−400…400 "step (x0.001)", empty charts showed 0–1, losses of different scales shared one axis)."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QImage, QPainter

from studio.core.base.events import Metric
from studio.gui.qt_run_charts import EMPTY_TEXT, OVERHANG, StepAxis
from studio.gui.qt_run_panel import RunPanel


def _panel(qtbot) -> RunPanel:
    panel = RunPanel()
    qtbot.addWidget(panel)
    panel.resize(1200, 500)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def test_empty_charts_say_so_and_show_no_ticks(qtbot):
    panel = _panel(qtbot)
    for chart in (panel.loss_plot, panel.accuracy_plot, panel.size_plot):
        assert chart.empty_hint.isVisible() and chart.empty_hint.toPlainText() == EMPTY_TEXT
        assert not chart.getPlotItem().getAxis("left").style["showValues"]
    panel.handle_event(Metric(0, "size/bytes", 2_000_000))
    panel.flush()
    assert not panel.size_plot.empty_hint.isVisible() and panel.loss_plot.empty_hint.isVisible()
    assert panel.size_plot.getPlotItem().getAxis("left").style["showValues"]
    panel.reset()
    assert panel.size_plot.empty_hint.isVisible()


def test_a_single_point_gets_whole_steps_around_it(qtbot):
    panel = _panel(qtbot)
    panel.handle_event(Metric(0, "val/accuracy", 0.95))
    panel.flush()
    (low, high), _ = panel.accuracy_plot.getPlotItem().vb.viewRange()
    assert low == -0.5 and high == 1  # whole steps around it (not ±0.5), never scaled to "x0.001"
    assert not panel.accuracy_plot.getPlotItem().getAxis("bottom").autoSIPrefix
    for step in (10, 20, 40):
        panel.handle_event(Metric(step, "val/accuracy", 0.9))
    panel.flush()
    qtbot.waitUntil(lambda: panel.accuracy_plot.getPlotItem().vb.viewRange()[0][1] >= 40)


def test_validation_loss_has_its_own_axis(qtbot):
    panel = _panel(qtbot)
    for step in range(0, 50, 5):
        panel.handle_event(Metric(step, "train/loss", 2.5 - step / 25))  # distillation loss ~0.5–2.5
    panel.handle_event(Metric(25, "val/loss", 0.021))                   # cross-entropy ~0.02
    panel.handle_event(Metric(49, "val/loss", 0.018))
    panel.flush()
    right = panel.loss_plot.right_view
    assert panel._curves["val/loss"].getViewBox() is right
    assert panel._curves["train/loss"].getViewBox() is panel.loss_plot.getPlotItem().vb
    qtbot.waitUntil(lambda: right.viewRange()[1][1] < 0.1)  # its own scale, not squashed at the bottom
    assert panel.loss_plot.getPlotItem().vb.viewRange()[1][1] > 2


def test_original_accuracy_label_sits_below_its_line(qtbot):
    panel = _panel(qtbot)
    panel.handle_event(Metric(0, "original/accuracy", 0.99))
    panel.handle_event(Metric(0, "val/accuracy", 0.90))
    panel.flush()
    line = panel.original_accuracy
    assert line.isVisible() and line.label.anchors[0] == (0, 0)
    assert line.label.toPlainText().startswith("original 99")  # formatted while hidden, shown with it


def test_a_narrow_chart_stacks_its_legend_instead_of_cutting_off_its_right_edge(qtbot):
    """Three charts beside the run settings at 1366 px are ~170 px wide: a two-column legend made
    the loss and accuracy plots ~220 px wide inside them, and their right parts were not drawn."""
    panel = _panel(qtbot)
    for step in range(1, 4):
        for name, value in (("train/loss", 1.0 / step), ("val/loss", 1.2 / step), ("val/accuracy", 0.9),
                            ("val/agreement", 0.95)):
            panel.handle_event(Metric(step, name, value))
    panel.flush()
    charts = (panel.loss_plot, panel.accuracy_plot)
    assert all(chart.legend_labels() for chart in charts)
    for width, columns in ((1600, 2), (520, 1), (1600, 2), (520, 1)):  # wide: side by side
        panel.resize(width, 500)
        qtbot.waitUntil(lambda: all(chart.legend.columnCount == columns for chart in charts), timeout=5000)
        # the plot fits its widget once the layouts have settled (5 px of slack: both axes + the labels)
        qtbot.waitUntil(lambda: all(chart.getPlotItem().size().width() <= chart.width() + 6 for chart in charts),
                        timeout=5000)
        for chart in charts:
            rows = -(-len(chart.legend.items) // columns)
            assert chart.legend.minimumHeight() == chart._legend_rows[0] + chart._legend_rows[1] * (rows - 1)


def _step_labels(chart) -> list[tuple[str, float, float]]:
    """The step axis's labels as pyqtgraph lays them out: (text, left, right) in axis pixels."""
    axis = chart.getPlotItem().getAxis("bottom")
    image = QImage(8, 8, QImage.Format.Format_ARGB32)
    painter = QPainter(image)
    try:
        _, _, texts = axis.generateDrawSpecs(painter)
    finally:
        painter.end()
    return sorted((text, rect.left(), rect.right()) for rect, _, text in texts)


def _laid_out(chart) -> bool:
    """Painted, and laid out since: the value axes as wide as the values they drew need (they size
    themselves when painting), their row with the view fits the chart, the step axis spans the view."""
    chart.grab()
    item = chart.getPlotItem()
    axes = [item.getAxis(side) for side in ("left", "right") if item.getAxis(side).isVisible()]
    return all(axis.width() == axis.minimumWidth() for axis in axes) \
        and sum(axis.width() for axis in axes) + item.vb.width() <= chart.width() + 1 \
        and item.getAxis("bottom").width() == item.vb.width()


def _run(panel, best: int, last: int = 172) -> None:
    for step in range(last + 1):
        panel.handle_event(Metric(step, "train/loss", 2.5 / (1 + step / 10)))
        if step % 43 == 0:
            panel.handle_event(Metric(step, "val/loss", 0.05 / (1 + step / 50)))
            panel.handle_event(Metric(step, "val/accuracy", 0.9 + step / 2000))
            panel.handle_event(Metric(step, "size/bytes", 20_000))
    panel.handle_event(Metric(best, "best/accuracy", 0.99))
    panel.flush()


def test_narrow_charts_space_their_step_labels_and_keep_the_best_label_inside(qtbot):
    """Three charts beside the settings at 1366 px: the loss plot is ~76 px wide between its two
    value axes, where pyqtgraph's ticks every 50 steps ran together ("50100150") and "best · step
    129" (~90 px) was cut at the plot's left edge."""
    panel = _panel(qtbot)
    panel.resize(520, 500)  # charts of 160 px: the loss plot ~64 px, the others ~100 px
    charts = (panel.loss_plot, panel.accuracy_plot, panel.size_plot)
    for best in (129, 20):  # the right half of the steps, then the left
        _run(panel, best)
        qtbot.waitUntil(lambda: all(chart.width() <= 170 and _laid_out(chart) for chart in charts))
        for chart in charts:
            axis, view = chart.getPlotItem().getAxis("bottom"), chart.getPlotItem().vb
            (low, high), size = view.viewRange()[0], axis.geometry().width()
            labels = _step_labels(chart)
            assert len(labels) >= 2 and labels[0][0] == "0"
            pixels = [right - left for _, left, right in labels]
            default = pg.AxisItem.tickSpacing(axis, low, high, size)[0][0] * size / (high - low)
            if chart is panel.loss_plot:
                assert default < max(pixels)  # pyqtgraph's own ticks would overlap here
            for (_, _, right), (_, left, _) in zip(labels, labels[1:]):
                assert left - right >= 3  # never touching
            assert all(-OVERHANG <= left and right <= size + OVERHANG for _, left, right in labels)
        for line, chart in zip(panel.best_lines, charts):
            label = line.label
            assert label.toPlainText() == f"best · step {best}"  # also the first best step's label
            assert label.angle == 90  # along the line: across it, half the plot could not hold it
            inside = chart.getPlotItem().vb.sceneBoundingRect()
            assert inside.contains(label.sceneBoundingRect()), (best, chart.objectName())
    panel.resize(1600, 500)  # wide: across the line, on the side with room, inside the plot
    qtbot.waitUntil(lambda: all(line.label.angle == 0 for line in panel.best_lines))
    for line, chart in zip(panel.best_lines, charts):
        assert chart.getPlotItem().vb.sceneBoundingRect().contains(line.label.sceneBoundingRect())
    panel.reset()  # the lines hidden; narrowed meanwhile, they are fitted when shown again
    panel.resize(520, 500)
    qtbot.waitUntil(lambda: all(chart.width() <= 170 and _laid_out(chart) for chart in charts))
    _run(panel, 129)
    for line, chart in zip(panel.best_lines, charts):
        assert line.label.angle == 90 and chart.getPlotItem().vb.sceneBoundingRect().contains(
            line.label.sceneBoundingRect())


def test_new_points_in_the_range_generate_no_step_ticks(qtbot, monkeypatch):
    """The step axis measures its labels only when it regenerates its ticks (a resize, a new
    range), never for points that leave the ranges alone (issue 16: cheap live updates)."""
    panel = _panel(qtbot)
    _run(panel, 20, last=110)  # steps 0…150
    charts = (panel.loss_plot, panel.accuracy_plot, panel.size_plot)
    qtbot.waitUntil(lambda: all(_laid_out(chart) for chart in charts))  # every axis has made its ticks
    calls = []
    spacing = StepAxis.tickSpacing
    monkeypatch.setattr(StepAxis, "tickSpacing", lambda *args: calls.append(args) or spacing(*args))
    for step in range(111, 150):  # inside the step range and the sticky value ranges
        panel.handle_event(Metric(step, "train/loss", 0.3))
    panel.flush()
    panel.loss_plot.grab()
    assert calls == []
    panel.resize(700, 500)
    qtbot.waitUntil(lambda: panel.loss_plot.grab() is not None and calls != [])  # a resize does measure
