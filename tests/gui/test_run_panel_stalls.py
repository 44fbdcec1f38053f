"""The run panel's live updates stay cheap for the GUI thread (issue 16: the window's stalls were
its own chart repaints, not the job). Counted, not timed: how often an update makes pyqtgraph
regenerate an axis (ticks, labels, grid: the expensive part of a chart repaint), and how many
charts one timer turn redraws."""

from __future__ import annotations

import pytest
from PySide6.QtGui import QPicture
from PySide6.QtWidgets import QApplication

from studio.core.base.events import Finished, Metric, Progress, StageStarted
from studio.gui.qt_run_charts import nice_ceiling, sticky_range
from studio.gui.qt_run_panel import RunPanel


@pytest.fixture
def panel(show):
    panel = show(RunPanel(), 1200, 500)
    panel.reset()
    panel.set_running(True)
    panel.handle_event(StageStarted("finetune", "steps"))
    return panel


def _axes(panel: RunPanel):
    for chart in (panel.loss_plot, panel.accuracy_plot, panel.size_plot):
        item = chart.getPlotItem()
        for side in ("left", "bottom", "right"):
            if side in item.axes:
                yield item.getAxis(side)


def test_nice_ceiling_and_sticky_range():
    assert [nice_ceiling(v) for v in (1, 1.2, 2.5, 7.6, 10, 11, 430, 0.03)] == \
        pytest.approx([1, 1.5, 3, 10, 10, 15, 500, 0.03])
    first = sticky_range([2.3, 1.0], None)
    assert first[0] <= 1.0 and first[1] >= 2.3 and first[0] >= 0  # a loss axis never goes below zero
    assert sticky_range([2.3, 0.8], first) == first  # a new low inside the range keeps it
    assert sticky_range([2.3, -0.5], first) != first  # leaving it gives a new one
    loss = sticky_range([2.3], None, from_zero=True)
    assert loss[0] == 0 and loss[1] >= 2.3  # a loss axis starts at zero...
    assert sticky_range([2.3, 1.1, 0.4, 0.05], loss, from_zero=True) == loss  # ...so a falling loss keeps it
    assert sticky_range([1.00, 1.01], (0.0, 100.0)) != (0.0, 100.0)  # data filling < 30 % of it: rescaled


def test_streaming_loss_points_rarely_regenerate_the_axes(qtbot, panel):
    """Before: every flush restyled every axis (set_empty) and moved the x and y ranges, so each
    ~15 Hz update regenerated and redrew all axes of the chart: 15-60 ms of GUI thread each."""
    panel.handle_event(Metric(0, "train/loss", 2.5))
    panel.flush()
    for axis in _axes(panel):
        axis.picture = axis.picture or QPicture()  # "drawn": an invalidation sets it back to None
    styled, ranges = [], []
    for axis in _axes(panel):
        original = axis.setStyle
        axis.setStyle = lambda *a, _o=original, **k: (styled.append(1), _o(*a, **k))[1]
    panel.loss_plot.getPlotItem().vb.sigXRangeChanged.connect(lambda *_: ranges.append("x"))
    panel.loss_plot.getPlotItem().vb.sigYRangeChanged.connect(lambda *_: ranges.append("y"))
    invalidated = 0
    flushes = 200
    for flush in range(flushes):
        for step in range(5 * flush + 1, 5 * flush + 6):
            panel.handle_event(Metric(step, "train/loss", 2.0 / (1 + step / 50) + 0.02 * (step % 3)))
            panel.handle_event(Progress(step, 5 * flushes, "epoch 1/1"))
        panel.flush(charts=1)
        for axis in _axes(panel):
            if axis.picture is None:
                invalidated += 1
                axis.picture = QPicture()
    assert len(panel.curve_points("train/loss")[0]) == 5 * flushes + 1
    print(f"x ranges {ranges.count('x')}, y ranges {ranges.count('y')}, axis invalidations {invalidated}")
    assert styled == []  # the chart was already non-empty: no restyling
    assert ranges.count("x") <= 20  # 1 ... 1000 steps through 1, 1.5, 2, 3, 5, 7.5 x 10^k (was: 200)
    assert ranges.count("y") <= 10  # a falling loss mostly stays inside its range (was: 200)
    assert invalidated <= 60        # of 200 flushes x 8 axes (was: every axis at every flush)


def test_one_timer_turn_redraws_one_chart(qtbot, panel):
    """A validation pass touches all three charts; each gets its own turn of the event loop."""
    panel.handle_event(Metric(10, "train/loss", 1.0))
    panel.handle_event(Metric(10, "val/loss", 0.5))
    panel.handle_event(Metric(10, "val/accuracy", 0.9))
    panel.handle_event(Metric(10, "size/bytes", 1000))
    panel.flush(charts=1)  # what the timer does
    drawn = [name for name in ("train/loss", "val/accuracy", "size/bytes") if panel.curve_points(name)[0]]
    assert drawn == ["train/loss"] and panel._timer.isActive()  # the loss chart now, the others later
    assert panel.curve_points("val/loss")[0] == [10]  # all of that chart's curves together
    qtbot.waitUntil(lambda: not panel._timer.isActive(), timeout=2000)
    assert all(panel.curve_points(name)[0] for name in ("val/accuracy", "size/bytes"))


def test_the_end_of_a_run_writes_the_log_at_once_and_the_charts_turn_by_turn(qtbot, panel):
    panel.handle_event(Metric(0, "size/bytes", 2000))
    panel.handle_event(Metric(5, "train/loss", 1.0))
    panel.handle_event(Metric(5, "val/accuracy", 0.9))

    class Report:
        def to_dict(self):
            return {"before": {"accuracy": 0.95}, "after": {"accuracy": 0.9, "bytes": 1500}}

    class Result:
        report = Report()

    panel.handle_event(Finished(Result()))
    assert "finished" in panel.log.toPlainText() and panel.progress.value() == 100
    assert panel.curve_points("size/bytes")[0] == []  # not all three charts in this one turn
    qtbot.waitUntil(lambda: not panel._timer.isActive(), timeout=2000)
    assert panel.curve_points("size/bytes")[0] == [0, 5]  # the size line spans the run
    assert panel.curve_points("train/loss")[0] == [5] and panel.curve_points("val/accuracy")[0] == [5]


def test_a_reset_keeps_every_plot_size_and_restyles_one_chart_per_turn(qtbot, panel):
    """A run start emptied all three charts in one turn: the legends and axes shrank, which resized
    every plot (a full repaint each), all drawn with the newly shown Run tab."""
    charts = [panel.loss_plot, panel.accuracy_plot, panel.size_plot]
    for name, value in (("train/loss", 1.0), ("val/loss", 0.5), ("val/accuracy", 0.9), ("val/agreement", 0.9),
                        ("size/bytes", 1000)):
        panel.handle_event(Metric(10, name, value))
    panel.flush()
    for _ in range(3):
        QApplication.processEvents()  # the first values widened the axes: that layout settles now
    resized: list[str] = []
    for chart in charts:
        chart.getPlotItem().vb.sigResized.connect(lambda *_a, n=chart.objectName(): resized.append(n))
    panel.reset()
    assert all(chart.empty_hint.isVisible() for chart in charts)  # empty at once
    assert [chart.updatesEnabled() for chart in charts] == [False] * 3  # drawn one per turn
    qtbot.waitUntil(lambda: all(chart.updatesEnabled() for chart in charts), timeout=2000)
    assert not any(axis.style["showValues"] for axis in _axes(panel))
    assert resized == []  # legends and axes kept their sizes
    assert panel.accuracy_plot.legend_labels() == []


def test_points_right_after_a_reset_come_after_it(qtbot, panel):
    panel.handle_event(Metric(3, "val/accuracy", 0.9))
    panel.flush()
    panel.reset()
    panel.handle_event(Metric(1, "train/loss", 2.0))
    panel.flush()  # before the reset's turns: they are done first
    assert all(chart.updatesEnabled() for chart in (panel.loss_plot, panel.accuracy_plot, panel.size_plot))
    assert not panel.loss_plot.empty_hint.isVisible() and panel.accuracy_plot.empty_hint.isVisible()
    assert panel.loss_plot.getPlotItem().getAxis("left").style["showValues"]
    assert not panel.accuracy_plot.getPlotItem().getAxis("left").style["showValues"]
    assert panel.curve_points("val/accuracy") == ([], []) and panel.curve_points("train/loss") == ([1.0], [2.0])


def test_the_first_validation_point_sets_ranges_from_the_data_and_shows_prebuilt_legend_entries(qtbot, panel):
    """The first validation point built legend entries and autoranged three views in its turn."""
    entries = {id(part) for chart in (panel.loss_plot, panel.accuracy_plot) for row in chart.legend.items
               for part in row}
    for step in range(0, 30, 5):
        panel.handle_event(Metric(step, "train/loss", 2.0 - step / 30))
    panel.handle_event(Metric(0, "original/accuracy", 0.991))
    panel.flush()
    assert panel.loss_plot.legend_labels() == ["train"] and panel.accuracy_plot.legend_labels() == []
    for name, value in (("val/loss", 0.117), ("val/accuracy", 0.962), ("val/agreement", 0.971)):
        panel.handle_event(Metric(30, name, value))
    panel.flush()
    assert panel.loss_plot.legend_labels() == ["train", "val (right axis)"]
    assert panel.accuracy_plot.legend_labels() == ["accuracy", "agreement"]
    assert entries == {id(part) for chart in (panel.loss_plot, panel.accuracy_plot) for row in chart.legend.items
                       for part in row}  # shown, not built
    views = [panel.loss_plot.getPlotItem().vb, panel.loss_plot.right_view, panel.accuracy_plot.getPlotItem().vb]
    assert all(not any(view.state["autoRange"]) for view in views)
    (_, _), (low, high) = panel.accuracy_plot.getPlotItem().vb.viewRange()
    assert low <= 96.2 and 99.1 <= high  # the points and the original's line
    (_, _), (low, high) = panel.loss_plot.right_view.viewRange()
    assert low <= 0.117 <= high < 1  # the validation loss on its own scale
    (_, _), (low, high) = panel.loss_plot.getPlotItem().vb.viewRange()
    assert low <= 1.0 and 2.0 <= high
    panel.reset()
    assert [chart.legend_labels() for chart in (panel.loss_plot, panel.accuracy_plot)] == [[], []]


def test_the_step_axis_spans_the_planned_fine_tuning_steps_at_once(qtbot, panel):
    """The step axis grew through nice ranges while points streamed in: each growth regenerated
    the axes of the charts; with fine-tuning's planned steps known it is set once."""
    panel.handle_event(Progress(1, 86, "epoch 1/2"))
    ranges: list[tuple[float, float]] = []
    panel.loss_plot.getPlotItem().vb.sigXRangeChanged.connect(lambda _vb, r: ranges.append(tuple(r)))
    for step in range(1, 87):
        panel.handle_event(Metric(step, "train/loss", 2.0 / step))
        if step % 5 == 0:
            panel.flush()
    panel.flush()
    assert len(ranges) == 1 and ranges[0][0] <= 0 and 86 <= ranges[0][1] <= 110
    (_, _), (low, high) = panel.loss_plot.getPlotItem().vb.viewRange()
    assert low == 0 and high >= 2.0  # from zero: the falling loss never moved it
