"""Charts follow the theme: pyqtgraph draws its own background, axes and text, which the style
sheet does not reach, so `qt_theme.style_chart` recolours them from the one light → dark map."""

from __future__ import annotations

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication

from studio.gui.qt_theme import CHART, DARK, apply_theme


def _charts(window) -> dict:
    panel = window.run.run_panel
    return {"loss": panel.loss_plot, "accuracy": panel.accuracy_plot, "size": panel.size_plot,
            "sensitivity curves": window.sensitivity.panel.curves, "compare bars": window.run.compare.bars}


def _colours(chart) -> dict[str, str]:
    item = chart.getPlotItem()
    return {"background": chart.backgroundBrush().color().name(),
            "title": QColor(item.titleLabel.opts["color"]).name() if item.titleLabel.text else None,
            "axis": item.getAxis("bottom").pen().color().name(),
            "corner pixel": chart.grab().toImage().pixelColor(3, 3).name()}


def test_charts_follow_the_dark_theme_and_back(qtbot, digits_window):
    window, app = digits_window, QApplication.instance()
    window.run.show_run()
    window.sensitivity.show()
    light = {name: _colours(chart) for name, chart in _charts(window).items()}
    assert all(c["background"] == CHART["background"] for c in light.values()), light
    try:
        apply_theme(app, "dark")
        dark = {name: _colours(chart) for name, chart in _charts(window).items()}
        for name, colours in dark.items():
            assert colours["background"] == DARK[CHART["background"]], (name, colours)
            assert QColor(colours["corner pixel"]).lightness() < 80, (name, colours)
            assert colours["axis"] == DARK.get(light[name]["axis"], light[name]["axis"]), (name, colours)
            if light[name]["title"] is not None:
                assert colours["title"] == DARK[light[name]["title"]], (name, colours)
        apply_theme(app, "light")
        assert {name: _colours(chart) for name, chart in _charts(window).items()} == light
    finally:
        apply_theme(app, "light")


def test_a_chart_made_in_the_dark_theme_starts_dark(qtbot):
    from studio.gui.qt_run_charts import RunChart

    app = QApplication.instance()
    try:
        apply_theme(app, "dark")
        chart = RunChart("darkChart", "Loss", "train loss", right="val loss")
        qtbot.addWidget(chart)
        assert chart.backgroundBrush().color().name() == DARK[CHART["background"]]
        assert QColor(chart.getPlotItem().titleLabel.opts["color"]).name() == DARK[CHART["title"]]
        assert chart.empty_hint.color.name() == DARK[CHART["hint"]]
    finally:
        apply_theme(app, "light")
