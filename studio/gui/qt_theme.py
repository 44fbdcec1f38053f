"""Light and dark themes: one style sheet, recoloured for dark, and a matching Fusion palette;
"system" follows the desktop's colour scheme and its changes. pyqtgraph charts draw their own
background, axes and text, which no style sheet reaches: `style_chart` puts them in the theme
from the same map (DARK), so the palette exists once."""

from __future__ import annotations

import re
import sys
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication, QMenu, QWidget

from studio.gui.qt_resources import settings, style_sheet

THEMES = ("system", "light", "dark")
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}\b")
# light → dark for every colour of resources/style.qss (surfaces darken, text lightens, the accent stays)
DARK = {
    "#ffffff": "#26282c", "#f6f7f9": "#1d1f22", "#f8f9fb": "#2a2c31", "#f3f4f6": "#2d3035", "#f3f6fb": "#30343b",
    "#f0f4fb": "#2f3440", "#eef2f8": "#323844", "#eef0f3": "#33363c", "#eceef1": "#3a3d43", "#e8effc": "#2c3a55",
    "#e3e5e8": "#3a3d43", "#e0e8f7": "#34405a", "#dce7fb": "#2d4670", "#dbe3f0": "#3b4a66", "#d9dce1": "#44474d",
    "#d0d4da": "#4a4e55", "#bdc1c6": "#5f6368", "#b7c6e3": "#4f6fa8", "#a8c0ec": "#3d5a8c", "#9aa0a6": "#7c8187",
    "#80868b": "#9aa0a6", "#5f6368": "#aeb3b9", "#3c4043": "#d5d8dc", "#202124": "#e8eaed", "#174ea6": "#8ab4f8",
    "#fef7e0": "#4a3c12", "#7a4f01": "#fbd872", "#f9d77e": "#7a5d12", "#c5221f": "#f28b82",
    "#e8f0fe": "#2c3a55", "#9a6700": "#fbd872",  # not in style.qss: widgets' own sheets (`set_sheet`)
}
# what each part of a chart has in the light theme (the style sheet's own greys); dark: through DARK
CHART = {"background": "#ffffff", "title": "#3c4043", "text": "#5f6368", "axis": "#bdc1c6", "hint": "#80868b"}
_CHART = {"light": CHART, "dark": {role: DARK[colour] for role, colour in CHART.items()}}


def chosen_theme() -> str:
    value = str(settings().value("view/theme", "system"))
    return value if value in THEMES else "system"


def effective_theme(app: QApplication, choice: str) -> str:
    if choice != "system":
        return choice
    return "dark" if app.styleHints().colorScheme() == Qt.ColorScheme.Dark else "light"


def dark_sheet(sheet: str) -> str:
    """One pass, so a colour is never recoloured twice (a dark value may be another light key)."""
    return _COLOUR.sub(lambda match: DARK.get(match.group(0).lower(), match.group(0)), sheet)


def _palette(dark: bool) -> QPalette:
    palette = QPalette()
    if not dark:
        return palette
    roles = QPalette.ColorRole
    for role, colour in ((roles.Window, "#1d1f22"), (roles.WindowText, "#e8eaed"), (roles.Base, "#26282c"),
                         (roles.AlternateBase, "#2a2c31"), (roles.Text, "#e8eaed"), (roles.Button, "#2d3035"),
                         (roles.ButtonText, "#e8eaed"), (roles.ToolTipBase, "#2d3035"), (roles.ToolTipText, "#e8eaed"),
                         (roles.Highlight, "#2f6fde"), (roles.HighlightedText, "#ffffff"),
                         (roles.PlaceholderText, "#7c8187"), (roles.Link, "#8ab4f8")):
        palette.setColor(role, QColor(colour))
    palette.setColor(QPalette.ColorGroup.Disabled, roles.Text, QColor("#7c8187"))
    palette.setColor(QPalette.ColorGroup.Disabled, roles.ButtonText, QColor("#7c8187"))
    return palette


def apply_theme(app: QApplication, choice: str | None = None) -> str:
    """Apply `choice` (default: the saved one); returns the theme in effect ("light"/"dark")."""
    choice = choice or chosen_theme()
    theme = effective_theme(app, choice)
    app.setPalette(_palette(theme == "dark"))
    sheet = style_sheet()
    app.setStyleSheet(dark_sheet(sheet) if theme == "dark" else sheet)
    app.setProperty("studioTheme", theme)
    plot_widget = sys.modules["pyqtgraph"].PlotWidget if "pyqtgraph" in sys.modules else ()  # charts need it
    for widget in app.allWidgets():
        if isinstance(widget, plot_widget):
            style_chart(widget)
        elif isinstance(light := widget.property("lightSheet"), str):
            widget.setStyleSheet(dark_sheet(light) if theme == "dark" else light)
    return theme


def set_sheet(widget: QWidget, sheet: str) -> None:
    """A widget's own style sheet, written in light colours: recoloured like the window's, now and
    on every theme change (a sheet set with `setStyleSheet` keeps its light colours in the dark)."""
    widget.setProperty("lightSheet", sheet)
    widget.setStyleSheet(dark_sheet(sheet) if current_theme() == "dark" else sheet)


def current_theme() -> str:
    app = QApplication.instance()
    return "dark" if app is not None and app.property("studioTheme") == "dark" else "light"


def chart_colour(role: str) -> str:
    """A chart part's colour in the theme in effect (`CHART`'s roles)."""
    return _CHART[current_theme()][role]


def style_chart(plot: Any) -> None:
    """Put a pyqtgraph PlotWidget in the theme in effect: the background, and every axis pen,
    title, axis label, legend entry and text item (hints, line labels) that has one of `CHART`'s
    colours in the theme it was drawn in takes that role's colour now; data colours (curves, a
    coloured axis label) stay. Does nothing when the chart is already in the theme."""
    theme, before = current_theme(), plot.property("chartTheme") or "light"
    if plot.property("chartTheme") == theme:
        return
    roles, new = {colour: role for role, colour in _CHART[before].items()}, _CHART[theme]

    def convert(colour: Any) -> Any:
        role = roles.get(QColor(colour).name()) if colour is not None else None
        return new[role] if role else colour

    plot.setBackground(new["background"])
    for axis in (entry["item"] for entry in plot.getPlotItem().axes.values()):
        axis.setPen(convert(axis.pen().color()))
        axis.setTextPen(convert(axis.textPen().color()))
        if (axis.labelText or axis.labelUnits) and "color" in axis.labelStyle:
            axis.setLabel(axis.labelText, axis.labelUnits, axis.labelUnitPrefix,
                          **{**axis.labelStyle, "color": convert(axis.labelStyle["color"])})
    pg = sys.modules["pyqtgraph"]
    for item in plot.scene().items():
        if isinstance(item, pg.LegendItem):
            item.opts["labelTextColor"] = convert(item.opts["labelTextColor"])
        elif isinstance(item, pg.LabelItem) and item.opts.get("color") is not None:
            item.setText(item.text, color=convert(item.opts["color"]))
        elif isinstance(item, pg.TextItem):
            item.setColor(convert(item.color))
    plot.setProperty("chartTheme", theme)


def set_theme(app: QApplication, choice: str) -> str:
    """The user's menu choice: remembered, applied now."""
    settings().setValue("view/theme", choice)
    return apply_theme(app, choice)


def follow_system(app: QApplication) -> None:
    """Re-apply when the desktop switches light/dark while "system" is chosen."""
    app.styleHints().colorSchemeChanged.connect(
        lambda _scheme: apply_theme(app) if chosen_theme() == "system" else None)


def theme_menu(parent: QWidget) -> QMenu:
    """View ▸ Theme: System / Light / Dark, one checked."""
    from PySide6.QtGui import QAction, QActionGroup


    menu = QMenu("&Theme", parent)
    group = QActionGroup(menu)
    current = chosen_theme()
    for choice in THEMES:
        action = QAction(choice.capitalize() + (" (follow the desktop)" if choice == "system" else ""), menu)
        action.setCheckable(True)
        action.setChecked(choice == current)
        action.setData(choice)
        action.triggered.connect(lambda _c=False, c=choice: set_theme(QApplication.instance(), c))
        group.addAction(action)
        menu.addAction(action)
    return menu
