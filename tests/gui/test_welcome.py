"""The first run: welcome screen with recent models and the guided path, About with versions,
light/dark themes that follow the system or the user's choice."""

from __future__ import annotations

from importlib import metadata

from PySide6.QtWidgets import QApplication, QLabel

from studio.core.model.loaders import LoadRequest


def test_welcome_lists_steps_and_recent_models(qtbot, window):
    from studio.gui.qt_empty_state import STEPS

    texts = [label.text() for label in window.empty.findChildren(QLabel)]
    for title, where, _ in STEPS:
        assert any(title in text and where in text for text in texts)
    assert window.empty.recent_buttons == []  # a first start has no recent models
    with qtbot.waitSignal(window.modelShown, timeout=60000):
        window.open_source(LoadRequest("sample:digits-cnn"))
    from studio.gui.qt_main_window import MainWindow

    second = MainWindow()
    qtbot.addWidget(second)
    assert [b.toolTip() for b in second.empty.recent_buttons] == ["sample:digits-cnn"]
    with qtbot.waitSignal(second.modelShown, timeout=60000):
        second.empty.recent_buttons[0].click()
    assert second.opened.loaded.name == "sample:digits-cnn"
    second.runner.shutdown()


def test_about_names_versions(window):
    from studio.gui.qt_about import versions

    rows = dict(versions())
    assert rows["torch"] == metadata.version("torch") and rows["PySide6"] == __import__("PySide6").__version__
    window.about()
    box = window.last_about_dialog
    assert box.isVisible() and metadata.version("torch") in box.text()
    box.accept()


def test_themes_recolour_and_are_remembered(qtbot, window):
    from studio.gui.qt_resources import style_sheet
    from studio.gui.qt_theme import DARK, THEMES, chosen_theme, dark_sheet, set_theme

    app = QApplication.instance()
    light = style_sheet()
    dark = dark_sheet(light)
    for light_colour, dark_colour in DARK.items():
        assert light_colour not in light or dark_colour in dark  # every light colour has its dark counterpart
    assert "#ffffff" not in dark.lower()
    assert "#fffffe" in dark  # text on the accent stays white
    try:
        assert set_theme(app, "dark") == "dark" and chosen_theme() == "dark"
        assert app.styleSheet() == dark and app.palette().window().color().lightness() < 80
        actions = {a.data(): a for a in window.theme_menu.actions()}
        assert set(actions) == set(THEMES)
        actions["light"].trigger()
        assert chosen_theme() == "light" and app.styleSheet() == light
        assert app.palette().window().color().lightness() > 200
    finally:
        app.setStyleSheet("")
        app.setPalette(app.style().standardPalette())
