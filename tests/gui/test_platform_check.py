"""A missing display or missing X11 libraries get one clear message before Qt can abort."""

from __future__ import annotations

import ctypes.util

from studio.gui.qt_platform_check import XCB_LIBRARIES, display_problem


def test_no_display_on_linux_is_explained():
    message = display_problem({}, "linux")
    assert "DISPLAY" in message and "QT_QPA_PLATFORM=offscreen" in message


def test_offscreen_wayland_and_other_systems_pass():
    assert display_problem({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({}, "darwin") is None and display_problem({}, "win32") is None


def test_missing_xcb_libraries_are_named_with_the_install_command(monkeypatch):
    real = ctypes.util.find_library
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None if name == "xcb-cursor" else real(name))
    message = display_problem({"DISPLAY": ":0"}, "linux")
    assert "apt-get install" in message and "libxcb-cursor0" in message
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: f"lib{name}.so")
    assert display_problem({"DISPLAY": ":0"}, "linux") is None
    assert set(XCB_LIBRARIES.values()) >= {"libxcb-cursor0", "libxcb-icccm4"}
