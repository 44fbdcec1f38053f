"""Icons, style sheet and recent-files storage: small shared bits of the window."""

from __future__ import annotations

import json
import re
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtGui import QIcon

from studio.core.base.resources import resource

ORGANIZATION = "CompressionStudio"
APPLICATION = "Compression Studio"
RECENT_KEY = "recentSources"
MAX_RECENT = 10
_FACTORY = re.compile(r"^(?P<path>.+\.py):(?P<name>[A-Za-z_][A-Za-z0-9_]*)$")


def icon(name: str) -> QIcon:
    """`resources/icons/NAME.svg`, or an empty icon if the file is missing."""
    path = resource("icons", f"{name}.svg")
    return QIcon(str(path)) if path.is_file() else QIcon()


def style_sheet() -> str:
    path = resource("style.qss")
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def settings() -> QSettings:
    """An INI file in the user's config folder on every platform; the format is named so that
    `QSettings.setPath(IniFormat, ...)` (tests, screenshot scripts) really redirects it."""
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION, APPLICATION)


def _portable(source: str) -> str:
    """Existing relative paths become absolute so the entry works from anywhere."""
    if source.startswith("sample:"):
        return source
    match = _FACTORY.match(source)
    path_part, suffix = (match["path"], f":{match['name']}") if match else (source, "")
    path = Path(path_part).expanduser()
    return f"{path.resolve() if path.exists() else path_part}{suffix}"


def recent_sources() -> list[dict[str, str | None]]:
    """Newest first: [{'source': ..., 'weights': ...}]. Trust is never remembered."""
    raw = settings().value(RECENT_KEY, "[]")
    try:
        entries = json.loads(raw) if isinstance(raw, str) else []
    except ValueError:
        return []
    return [{"source": e["source"], "weights": e.get("weights")} for e in entries
            if isinstance(e, dict) and isinstance(e.get("source"), str)][:MAX_RECENT]


def add_recent_source(source: str, weights: str | None) -> list[dict[str, str | None]]:
    entry = {"source": _portable(source), "weights": _portable(weights) if weights else None}
    entries = [entry] + [e for e in recent_sources() if e != entry]
    entries = entries[:MAX_RECENT]
    store = settings()
    store.setValue(RECENT_KEY, json.dumps(entries))
    store.sync()
    return entries


def clear_recent_sources() -> None:
    store = settings()
    store.remove(RECENT_KEY)
    store.sync()
