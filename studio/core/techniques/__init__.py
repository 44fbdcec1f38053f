"""Compression techniques. Each module of this package that defines one registers it with
`@register`; `all_techniques()` imports every module once, so adding a technique is one new
module (plus its tests) and no list to edit."""

from __future__ import annotations

import importlib
import pkgutil

from studio.core.techniques.base import TECHNIQUES, Technique, TechniqueConfig, register

_discovered = False


def all_techniques() -> dict[str, Technique]:
    """Name → technique, in composition order (rank reduction → pruning → quantization)."""
    global _discovered
    if not _discovered:
        for info in pkgutil.iter_modules(__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{__name__}.{info.name}")
        _discovered = True
    return dict(sorted(TECHNIQUES.items(), key=lambda item: item[1].order))


__all__ = ["TECHNIQUES", "Technique", "TechniqueConfig", "all_techniques", "register"]
