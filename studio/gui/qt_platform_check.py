"""Before Qt starts: a missing display or missing X11 libraries make Qt abort the process
with a terse plugin message; check first and say what to install or set instead."""

from __future__ import annotations

import ctypes.util
import os
import sys

# libqxcb's system dependencies that desktop-less Linux images often lack (Qt >= 6.5 needs xcb-cursor).
XCB_LIBRARIES = {"xcb-cursor": "libxcb-cursor0", "xcb-icccm": "libxcb-icccm4", "xcb-keysyms": "libxcb-keysyms1",
                 "xcb-image": "libxcb-image0", "xcb-render-util": "libxcb-render-util0",
                 "xkbcommon-x11": "libxkbcommon-x11-0"}


def display_problem(environ: dict[str, str] | None = None, platform: str | None = None) -> str | None:
    """None when the window can start; otherwise one message saying why not and what to do."""
    environ = dict(os.environ if environ is None else environ)
    if (platform or sys.platform) != "linux":
        return None
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen and not chosen.startswith("xcb"):
        return None  # offscreen, wayland, vnc...: Qt's own choice, nothing to check here
    if not chosen and environ.get("WAYLAND_DISPLAY"):
        return None
    if not environ.get("DISPLAY"):
        return ("No display to open the window on (DISPLAY is not set). Run it in a desktop session, or "
                "headless with QT_QPA_PLATFORM=offscreen (e.g. studio gui MODEL --screenshot out.png).")
    missing = [package for library, package in XCB_LIBRARIES.items() if ctypes.util.find_library(library) is None]
    if missing:
        return ("Qt's X11 plugin needs system libraries that are missing here. On Debian/Ubuntu: "
                f"sudo apt-get install {' '.join(missing)}")
    return None
