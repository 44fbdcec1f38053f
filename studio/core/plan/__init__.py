"""The compression plan: versioned data mapping layers to technique configs.

Rules select layers by exact name, glob (`encoder.layer.*.intermediate.dense`, `*` also
crosses dots), regex (`re:...`) or the default `*`. For each layer and technique the most
specific matching rule wins: exact name > pattern (glob or regex) > default. Two rules of
the same specificity that give one layer different configs for one technique are a
conflict. A technique set to null or false (`quantize: null`) excludes the layer from it;
`true` means the technique's defaults. Regexes use the `regex` package (Python `re` syntax
plus a few extensions) and are matched under a timeout.

Recipes are untrusted text: `schema` parses them under size/depth/alias limits and checks
every field's type before a config is built.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.core.base.errors import StudioError
from studio.core.plan.schema import MAX_BYTES, MAX_STRING, config_problems, parse_text, short
from studio.core.techniques.base import TechniqueConfig

PLAN_VERSION = 1
DEFAULT_PATTERN = "*"
SPECIFICITY = {"exact": 3, "pattern": 2, "default": 1}
REGEX_TIMEOUT_S = 0.25  # one layer name; real patterns take microseconds
SETTINGS_TYPES = {"data": (str, type(None)), "finetune": (dict, type(None))}


class PatternError(StudioError, re.error):
    """A `re:` pattern that does not compile or takes too long; also an `re.error` for callers
    that validate patterns as the user types."""

    def __init__(self, message: str) -> None:
        StudioError.__init__(self, message)
        self.msg, self.pattern, self.pos = message, None, None


def pattern_kind(pattern: str) -> str:
    if pattern == DEFAULT_PATTERN:
        return "default"
    if pattern.startswith("re:") or any(ch in pattern for ch in "*?["):
        return "pattern"
    return "exact"


@functools.lru_cache(maxsize=512)
def compile_regex(pattern: str):
    """`re:` patterns use the `regex` package: it matches with a timeout, so a catastrophic
    pattern such as `(.*.*)*x` fails in a fraction of a second instead of hanging (a syntax
    check cannot recognise every slow pattern; a timeout bounds them all)."""
    import regex

    try:
        return regex.compile(pattern)
    except (regex.error, ValueError, OverflowError, RecursionError) as exc:
        raise PatternError(f"invalid regex {short('re:' + pattern)} ({exc})") from None


def pattern_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("re:"):
        try:
            return compile_regex(pattern[3:]).fullmatch(name, timeout=REGEX_TIMEOUT_S) is not None
        except TimeoutError:
            raise PatternError(f"the regex {short(pattern)} takes too long to match (catastrophic "
                               "backtracking, e.g. nested repeats); simplify it") from None
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
        """Type-check every field (all problems at once, each with its path), then build."""
        from studio.core.techniques import all_techniques

        if not isinstance(data, dict):
            raise StudioError(f"A recipe is a mapping with 'version' and 'rules', got {short(data)}.")
        unknown = sorted(short(k) if not isinstance(k, str) else k[:40] for k in set(data) - {"version", "rules", "settings"})
        if unknown:
            raise StudioError(f"Unknown recipe key(s): {', '.join(unknown)} (allowed: version, rules, settings).")
        version = data.get("version", PLAN_VERSION)
        if type(version) is not int or version != PLAN_VERSION:
            raise StudioError(f"Recipe version {short(version)} is not supported; this studio reads version {PLAN_VERSION}.")
        techniques = all_techniques()
        raw_rules = data.get("rules")
        problems: list[str] = []
        if raw_rules is not None and not isinstance(raw_rules, list):
            problems.append(f"rules: expected a list of rules, got {short(raw_rules)}")
            raw_rules = []
        rules = []
        for index, raw in enumerate(raw_rules or []):
            rule = _read_rule(raw, f"rules[{index}]", techniques, problems)
            if rule is not None:
                rules.append(rule)
        settings = _read_settings(data.get("settings"), problems)
        if problems:
            raise PlanError(problems)
        return cls(tuple(rules), settings, version)

    # --- files -------------------------------------------------------------------------
    def dumps(self, fmt: str = "yaml") -> str:
        if fmt == "json":
            return json.dumps(self.to_dict(), indent=2) + "\n"
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        from studio.core.base.atomic import write_text_atomic

        path = Path(path)
        write_text_atomic(path, self.dumps("json" if path.suffix == ".json" else "yaml"))

    @classmethod
    def loads(cls, text: str, fmt: str = "yaml") -> CompressionPlan:
        return cls.from_dict(parse_text(text, fmt))

    @classmethod
    def load(cls, path: str | Path) -> CompressionPlan:
        path = Path(path)
        if not path.is_file():
            raise StudioError(f"{path}: no such recipe file.")
        try:
            if path.stat().st_size > 4 * MAX_BYTES:  # before reading a huge file into memory
                raise StudioError(f"{path}: {path.stat().st_size:,} bytes is too large for a recipe.")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise StudioError(f"{path}: cannot read the recipe ({exc}).") from exc
        try:
            return cls.loads(text, "json" if path.suffix == ".json" else "yaml")
        except PlanError as exc:
            raise PlanError(exc.problems, source=str(path)) from None
        except StudioError as exc:
            raise StudioError(f"{path}: {exc}") from None


class PlanError(StudioError):
    """Every problem of a plan at once, each naming the rule or layer and the reason."""

    def __init__(self, problems: list[str], source: str = "") -> None:
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(f"{head}the plan has {len(problems)} problem(s):\n  - " + "\n  - ".join(problems))

    def one_line(self, limit: int = 8) -> str:
        """The terminal form: problems joined by '; ', the first `limit` of them."""
        head = f"{self.source}: " if self.source else ""
        shown = "; ".join(self.problems[:limit])
        more = f"; and {len(self.problems) - limit} more" if len(self.problems) > limit else ""
        return f"{head}the plan has {len(self.problems)} problem(s): {shown}{more}"


def _read_rule(raw: Any, where: str, techniques: dict, problems: list[str]) -> Rule | None:
    if not isinstance(raw, dict) or not isinstance(raw.get("layers"), str) or not raw["layers"]:
        problems.append(f"{where}: needs 'layers' (a layer name, glob, 're:regex' or '*').")
        return None
    layers = raw["layers"]
    if len(layers) > MAX_STRING:
        problems.append(f"{where}.layers: a pattern of {len(layers):,} characters is too long "
                        f"(at most {MAX_STRING}): {short(layers)}")
        return None
    where = f"{where} ({layers if len(layers) <= 40 else layers[:40] + '...'})"
    configs: dict[str, TechniqueConfig | None] = {}
    for key, value in raw.items():
        if key == "layers":
            continue
        technique = techniques.get(key) if isinstance(key, str) else None
        if technique is None:
            problems.append(f"{where}: unknown technique {short(key)}; use {', '.join(techniques)}.")
            continue
        if value is None or value is False:  # null or false: exclude the layer from this technique
            configs[key] = None
            continue
        if value is True:  # true: the technique's defaults
            value = {}
        found = config_problems(technique.config_type, value, f"{where}.{key}")
        if found:
            problems += found
            continue
        try:
            configs[key] = technique.config_type.from_dict(value)
        except StudioError as exc:
            problems.append(f"{where}.{key}: {exc}")
    if len(raw) == 1:
        problems.append(f"{where}: names no technique ({', '.join(techniques)}).")
    if layers.startswith("re:"):
        try:
            compile_regex(layers[3:])
        except PatternError as exc:
            problems.append(f"{where}: {exc}.")
    return Rule(layers, configs)


def _read_settings(raw: Any, problems: list[str]) -> dict[str, Any]:
    """Run settings stay free-form (fine-tuning validates its own); their shape is checked here."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"settings: expected a mapping (data, finetune), got {short(raw)}")
        return {}
    for key, value in raw.items():
        if not isinstance(key, str):
            problems.append(f"settings: keys are names, got {short(key)}")
        elif key in SETTINGS_TYPES and not isinstance(value, SETTINGS_TYPES[key]):
            kind = "a data spec string" if key == "data" else "a mapping"
            problems.append(f"settings.{key}: expected {kind}, got {short(value)}")
    return dict(raw)
