"""Where the repository's `resources/` folder (sample weights, data, icons, recipes) lives."""

from __future__ import annotations

from pathlib import Path

RESOURCES = Path(__file__).resolve().parents[3] / "resources"


def resource(*parts: str) -> Path:
    return RESOURCES.joinpath(*parts)
