"""Compression techniques. Each module of this package that defines one registers it with
`@register`; `all_techniques()` imports every module once, so adding a technique is one new
module (plus its tests) and no list to edit."""

from __future__ import annotations

from studio.core.base.discovery import import_submodules
from studio.core.techniques.base import TECHNIQUES, Technique, TechniqueConfig, register


def all_techniques() -> dict[str, Technique]:
    """Name → technique, in composition order (rank reduction → pruning → quantization)."""
    import_submodules(__name__, __path__)
    return dict(sorted(TECHNIQUES.items(), key=lambda item: item[1].order))


__all__ = ["TECHNIQUES", "Technique", "TechniqueConfig", "all_techniques", "register"]
