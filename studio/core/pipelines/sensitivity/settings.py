"""Sweep columns: each technique's default settings, parsing of user labels/values, and each
cell's technique config for one concrete layer. What a setting means is the technique's own
(`Technique.sweep_setting`, `sweep_defaults`, `aliases`, `layer_body`); nothing here names one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.core.base.errors import StudioError
from studio.core.plan import pattern_matches
from studio.core.pipelines.sensitivity.result import SweepSetting

if TYPE_CHECKING:
    from torch import nn

    from studio.core.techniques.base import TechniqueConfig


def _techniques() -> dict:
    from studio.core.techniques import all_techniques

    return all_techniques()


def sweepable_techniques() -> tuple[tuple[str, str], ...]:
    """(key, label) of every registered technique that has sweep settings, in menu order."""
    return tuple((key, technique.label) for key, technique in _techniques().items() if technique.sweep_defaults)


def technique_key(name: str) -> str:
    typed = name.strip().lower()
    techniques = _techniques()
    for key, technique in techniques.items():
        if typed == key or typed in technique.aliases:
            return key
    raise StudioError(f"Unknown technique {name!r}; use {', '.join(techniques)}.")


def parse_setting(technique: str, text: str) -> SweepSetting:
    """e.g. `prune`: 50% / struct 30% / 2:4; `lowrank`: rank 25% / energy 90%; `quantize`: int8 / int4."""
    key = technique_key(technique)
    label, body = _techniques()[key].sweep_setting(" ".join(text.strip().lower().split()), text)
    return SweepSetting(key, label, {key: body})


def sweep_settings(techniques: tuple[str, ...], chosen: dict[str, tuple[str, ...]] | None) -> tuple[SweepSetting, ...]:
    keys = list(dict.fromkeys(technique_key(t) for t in techniques)) or [k for k, _ in sweepable_techniques()]
    if not keys:
        raise StudioError(f"Choose at least one technique to sweep ({', '.join(_techniques())}).")
    chosen = {technique_key(k): tuple(v) for k, v in (chosen or {}).items()}
    for key in chosen:
        if key not in keys:
            raise StudioError(f"Settings were given for {key}, which is not among the swept techniques.")
    out: list[SweepSetting] = []
    for key in keys:
        for text in chosen.get(key) or _techniques()[key].sweep_defaults:
            setting = parse_setting(key, text)
            if any(s.label == setting.label for s in out):
                raise StudioError(f"Setting {setting.label!r} is listed twice.")
            out.append(setting)
    return tuple(out)


def layer_rule(setting: SweepSetting, module: nn.Module) -> dict:
    """The recipe rule body of `setting` for this layer, completed as a plan would (e.g. the
    layer's low-rank method)."""
    techniques = _techniques()
    return {key: techniques[key].layer_body(dict(body), module) for key, body in setting.rule.items()}


def layer_configs(setting: SweepSetting, module: nn.Module | None) -> dict[str, TechniqueConfig]:
    """The setting's technique configs as the sweep applies them to `module` (low rank gets the
    layer's own method, as a plan would); None: the setting's rule as written."""
    techniques = _techniques()
    rule = layer_rule(setting, module) if module is not None else setting.rule
    return {key: techniques[key].config_type.from_dict(body) for key, body in rule.items()}


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
