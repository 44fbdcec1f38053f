"""Registries fill themselves when their package's modules are imported: import every public
module of a package, once, so adding a technique or a low-rank method is adding a module."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Iterable

_done: set[str] = set()


def import_submodules(package: str, path: Iterable[str]) -> None:
    """Import each module of `package` (its `__path__`) whose name does not start with "_"."""
    if package in _done:
        return
    for info in pkgutil.iter_modules(path):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
    _done.add(package)
