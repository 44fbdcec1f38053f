"""Where the `resources/` folder (sample weights, data, icons, recipes) lives: beside the package in
a source checkout or the standalone app, under <prefix>/share/compression-studio after a plain
(non-editable) `pip install .`."""

from __future__ import annotations

import sys
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[3] / "resources"
_INSTALLED = Path(sys.prefix) / "share" / "compression-studio" / "resources"
RESOURCES = _CHECKOUT if _CHECKOUT.is_dir() else _INSTALLED


def resource(*parts: str) -> Path:
    return RESOURCES.joinpath(*parts)
