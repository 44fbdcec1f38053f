"""The compression plan: versioned data mapping layers to technique configs.

Rules select layers by exact name, glob (`encoder.layer.*.intermediate.dense`, `*` also
crosses dots), regex (`re:...`) or the default `*`. For each layer and technique the most
specific matching rule wins: exact name > pattern (glob or regex) > default. Two rules of
the same specificity that give one layer different configs for one technique are a
conflict. A technique set to null (`quantize: null`) excludes the layer from it.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.errors import StudioError
from studio.core.techniques.base import TechniqueConfig

PLAN_VERSION = 1
DEFAULT_PATTERN = "*"
SPECIFICITY = {"exact": 3, "pattern": 2, "default": 1}


def pattern_kind(pattern: str) -> str:
    if pattern == DEFAULT_PATTERN:
        return "default"
    if pattern.startswith("re:") or any(ch in pattern for ch in "*?["):
        return "pattern"
    return "exact"


def pattern_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("re:"):
        return re.fullmatch(pattern[3:], name) is not None
    return fnmatch.fnmatchcase(name, pattern)


@dataclass(frozen=True)
class Rule:
    """One recipe entry: a layer selector and, per technique, a config or None (exclude)."""

    layers: str
    techniques: dict[str, TechniqueConfig | None] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return pattern_kind(self.layers)

    def matches(self, name: str) -> bool:
        return pattern_matches(self.layers, name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layers": self.layers}
        for key, config in self.techniques.items():
            out[key] = None if config is None else config.to_dict()
        return out


@dataclass(frozen=True)
class CompressionPlan:
    """Ordered rules plus free-form run settings (fine-tuning, data) that replay with the recipe."""

    rules: tuple[Rule, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    version: int = PLAN_VERSION

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": self.version, "rules": [r.to_dict() for r in self.rules]}
        if self.settings:
            out["settings"] = self.settings
        return out

    @classmethod
    def from_dict(cls, data: Any) -> CompressionPlan:
        from studio.core.techniques import all_techniques

        if not isinstance(data, dict):
            raise StudioError("A recipe is a mapping with 'version' and 'rules'.")
        unknown = sorted(set(data) - {"version", "rules", "settings"})
        if unknown:
            raise StudioError(f"Unknown recipe key(s): {', '.join(unknown)} (allowed: version, rules, settings).")
        version = data.get("version", PLAN_VERSION)
        if version != PLAN_VERSION:
            raise StudioError(f"Recipe version {version!r} is not supported; this studio reads version {PLAN_VERSION}.")
        techniques = all_techniques()
        rules, problems = [], []
        for index, raw in enumerate(data.get("rules") or []):
            where = f"rule {index + 1}"
            if not isinstance(raw, dict) or not isinstance(raw.get("layers"), str) or not raw["layers"]:
                problems.append(f"{where}: needs 'layers' (a layer name, glob, 're:regex' or '*').")
                continue
            where = f"rule {index + 1} ({raw['layers']})"
            configs: dict[str, TechniqueConfig | None] = {}
            for key, value in raw.items():
                if key == "layers":
                    continue
                technique = techniques.get(key)
                if technique is None:
                    problems.append(f"{where}: unknown technique {key!r}; use {', '.join(techniques)}.")
                    continue
                try:
                    configs[key] = None if value is None else technique.config_type.from_dict(value)
                except StudioError as exc:
                    problems.append(f"{where}: {key}: {exc}")
            if not any(key != "layers" for key in raw):
                problems.append(f"{where}: names no technique ({', '.join(techniques)}).")
            if raw["layers"].startswith("re:"):
                try:
                    re.compile(raw["layers"][3:])
                except re.error as exc:
                    problems.append(f"{where}: invalid regex ({exc}).")
            rules.append(Rule(raw["layers"], configs))
        if problems:
            raise PlanError(problems)
        return cls(tuple(rules), dict(data.get("settings") or {}), version)

    # --- files -------------------------------------------------------------------------
    def dumps(self, fmt: str = "yaml") -> str:
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2) + "\n"
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        from studio.core.atomic import write_text_atomic

        path = Path(path)
        write_text_atomic(path, self.dumps("json" if path.suffix == ".json" else "yaml"))

    @classmethod
    def loads(cls, text: str, fmt: str = "yaml") -> CompressionPlan:
        import yaml

        try:
            data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
        except (ValueError, yaml.YAMLError) as exc:
            raise StudioError(f"The recipe is not valid {fmt.upper()}: {exc}") from exc
        return cls.from_dict(data)

    @classmethod
    def load(cls, path: str | Path) -> CompressionPlan:
        path = Path(path)
        if not path.is_file():
            raise StudioError(f"{path}: no such recipe file.")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StudioError(f"{path}: cannot read the recipe ({exc}).") from exc
        try:
            return cls.loads(text, "json" if path.suffix == ".json" else "yaml")
        except PlanError as exc:
            raise PlanError(exc.problems, source=str(path)) from None


class PlanError(StudioError):
    """Every problem of a plan at once, each naming the rule or layer and the reason."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = list(problems)
        head = f"{source}: " if source else ""
        super().__init__(f"{head}the plan has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))
