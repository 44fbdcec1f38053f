"""Compression techniques. Each module registers one technique with `@register`;
`all_techniques()` imports them so the registry is complete."""

from __future__ import annotations

from studio.core.techniques.base import TECHNIQUES, Technique, TechniqueConfig, register

_MODULES = ("lowrank", "pruning", "quantization")


def all_techniques() -> dict[str, Technique]:
    """Name → technique, in composition order (rank reduction → pruning → quantization)."""
    import importlib

    for name in _MODULES:
        importlib.import_module(f"studio.core.techniques.{name}")
    return dict(sorted(TECHNIQUES.items(), key=lambda item: item[1].order))


__all__ = ["TECHNIQUES", "Technique", "TechniqueConfig", "all_techniques", "register"]
