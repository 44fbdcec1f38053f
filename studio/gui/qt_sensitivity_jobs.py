"""Files of the Sensitivity dock: where sweeps cache their cells, and reading a saved table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PySide6.QtCore import QStandardPaths

from studio.core.base.errors import StudioError
from studio.core.pipelines.sensitivity import SensitivityResult


def default_cache_dir() -> Path:
    base = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.CacheLocation)
    return Path(base or Path.home() / ".cache" / "compression-studio") / "sensitivity"


def load_result(path: str | Path, module: Any) -> SensitivityResult:
    """Read a saved sweep; one StudioError for an unreadable file or another model's table."""
    try:
        result = SensitivityResult.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except OSError as exc:
        raise StudioError(f"Could not read {path}: {exc.strerror or exc}.") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise StudioError(f"{path} is not a sensitivity result ({type(exc).__name__}: {exc}).") from None
    names = {name for name, _ in module.named_modules()}
    missing = [layer for layer in result.layers if layer not in names]
    if missing:
        raise StudioError(f"{path} was measured on another model: this one has no layer {missing[0]!r}.")
    return result
