"""Sweep columns: default settings per technique, parsing of user labels/values, and each
cell's technique config for one concrete layer (low-rank picks the layer's method as a plan would)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from studio.core.base.errors import StudioError
from studio.core.plan import pattern_matches
from studio.core.pipelines.sensitivity.result import SweepSetting

if TYPE_CHECKING:
    from torch import nn

    from studio.core.techniques.base import TechniqueConfig

ALIASES = {"prune": "prune", "pruning": "prune", "lowrank": "lowrank", "rank": "lowrank", "low-rank": "lowrank",
           "quantize": "quantize", "quant": "quantize", "quantization": "quantize"}
DEFAULTS = {
    "prune": ("prune 30%", "prune 50%", "prune 70%", "struct 30%", "struct 50%"),
    "lowrank": ("rank 50%", "rank 25%", "energy 90%"),
    "quantize": ("int8", "int8 w+a", "int4", "fp16"),
}
QUANT = {
    "int8": {"dtype": "int8", "activations": None},
    "int8 w+a": {"dtype": "int8", "activations": "dynamic"},
    "int4": {"dtype": "int4", "activations": None, "group_size": 128},
    "int4 g32": {"dtype": "int4", "activations": None, "group_size": 32},
    "fp16": {"dtype": "fp16", "activations": None},
}
_NUMBER = r"(\d+(?:\.\d+)?)\s*(%?)"


def technique_key(name: str) -> str:
    key = ALIASES.get(name.strip().lower())
    if key is None:
        raise StudioError(f"Unknown technique {name!r}; use prune, lowrank or quant.")
    return key


def _fraction(text: str, what: str) -> float:
    match = re.fullmatch(_NUMBER, text.strip())
    if not match:
        raise StudioError(f"{what} {text!r} is not a number or percentage (e.g. 0.5 or 50%).")
    value = float(match.group(1)) / (100 if match.group(2) else 1)
    if not 0 < value < 1 + 1e-9:
        raise StudioError(f"{what} {text!r} must be a fraction between 0 and 1 (or a percentage, e.g. 50%).")
    return round(value, 6)


def _pct(value: float) -> str:
    return f"{value * 100:g}%"


def parse_setting(technique: str, text: str) -> SweepSetting:
    """`prune`: 0.5 / 50% / prune 50% / struct 30% / 2:4; `lowrank`: 0.25 / rank 25% / energy 90%;
    `quantize`: int8 / int8 w+a / int4 / int4 g32 / fp16."""
    technique = technique_key(technique)
    raw = " ".join(text.strip().lower().split())
    if technique == "quantize":
        if raw not in QUANT:
            raise StudioError(f"Unknown precision {text!r}; use one of: {', '.join(QUANT)}.")
        return SweepSetting("quantize", raw, {"quantize": dict(QUANT[raw])})
    if technique == "prune":
        if raw == "2:4":
            return SweepSetting("prune", "2:4", {"prune": {"mode": "2:4"}})
        structured = raw.startswith(("struct", "s"))
        number = re.sub(r"^(structured|struct|s|unstructured|prune)\s*", "", raw)
        amount = _fraction(number, "Pruning amount")
        if amount >= 1:
            raise StudioError(f"Pruning amount {text!r} must be below 100%.")
        mode = "structured" if structured else "unstructured"
        label = f"{'struct' if structured else 'prune'} {_pct(amount)}"
        return SweepSetting("prune", label, {"prune": {"mode": mode, "amount": amount}})
    energy = raw.startswith(("energy", "e"))
    number = re.sub(r"^(energy|e|rank|r)\s*", "", raw)
    value = _fraction(number, "Energy" if energy else "Rank fraction")
    if energy:
        return SweepSetting("lowrank", f"energy {_pct(value)}", {"lowrank": {"energy": value}})
    if value >= 1:
        raise StudioError(f"Rank fraction {text!r} must be below 100%.")
    return SweepSetting("lowrank", f"rank {_pct(value)}", {"lowrank": {"rank_fraction": value}})


def sweep_settings(techniques: tuple[str, ...], chosen: dict[str, tuple[str, ...]] | None) -> tuple[SweepSetting, ...]:
    keys = list(dict.fromkeys(technique_key(t) for t in techniques))
    if not keys:
        raise StudioError("Choose at least one technique to sweep (prune, lowrank, quant).")
    chosen = {technique_key(k): tuple(v) for k, v in (chosen or {}).items()}
    for key in chosen:
        if key not in keys:
            raise StudioError(f"Settings were given for {key}, which is not among the swept techniques.")
    out: list[SweepSetting] = []
    for key in keys:
        for text in chosen.get(key) or DEFAULTS[key]:
            setting = parse_setting(key, text)
            if any(s.label == setting.label for s in out):
                raise StudioError(f"Setting {setting.label!r} is listed twice.")
            out.append(setting)
    return tuple(out)


def lowrank_method(module: nn.Module) -> str:
    """The method a plan picks by default: the first registered one that fits the layer (SVD for
    Linear and 1x1 convs, Tucker-2 for larger kernels)."""
    from studio.core.techniques.lowrank_methods import default_method

    return default_method(module)


def layer_rule(setting: SweepSetting, module: nn.Module) -> dict:
    """The recipe rule body of `setting` for this layer (low-rank gets the layer's method)."""
    rule = {key: dict(body) for key, body in setting.rule.items()}
    if "lowrank" in rule and "method" not in rule["lowrank"]:
        rule["lowrank"]["method"] = lowrank_method(module)
    return rule


def layer_configs(setting: SweepSetting, module: nn.Module) -> dict[str, TechniqueConfig]:
    from studio.core.techniques import all_techniques

    techniques = all_techniques()
    return {key: techniques[key].config_type.from_dict(body) for key, body in layer_rule(setting, module).items()}


def cell_problem(name: str, module: nn.Module, setting: SweepSetting) -> str | None:
    """Why this setting cannot apply to this layer, in the technique's own words; None when it can."""
    from studio.core.techniques import all_techniques

    techniques = all_techniques()
    for key, config in layer_configs(setting, module).items():
        technique = techniques[key]
        if not technique.supports(module):
            return f"{key} does not apply to {type(module).__name__} ({technique.supported_types})"
        problems = config.problems() + technique.check(name, module, config)
        if problems:
            return "; ".join(problems)
    return None


def compressible_layers(model: nn.Module, settings: tuple[SweepSetting, ...], pattern: str | None) -> tuple[str, ...]:
    """Layers at least one swept technique supports, in model order, filtered by a recipe-style pattern."""
    from studio.core.techniques import all_techniques

    techniques = all_techniques()
    keys = {key for s in settings for key in s.rule}
    names = []
    for name, module in model.named_modules():
        if not name or not any(techniques[k].supports(module) for k in keys):
            continue
        if pattern and pattern != "*" and not pattern_matches(pattern, name):
            continue
        names.append(name)
    if not names:
        where = f" matching {pattern!r}" if pattern else ""
        raise StudioError(f"The model has no layer{where} that {', '.join(sorted(keys))} can change.")
    return tuple(names)
