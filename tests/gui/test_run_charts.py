"""The run charts read well when a run is short or empty (issue: a single point gave an x axis of
−400…400 "step (x0.001)", empty charts showed 0–1, losses of different scales shared one axis)."""

from __future__ import annotations

from studio.core.base.events import Metric
from studio.gui.qt_run_charts import EMPTY_TEXT
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
