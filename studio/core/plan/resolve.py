"""Turn a plan into per-technique layer assignments for one model, or list every problem."""

from __future__ import annotations

from typing import TYPE_CHECKING

from studio.core.plan import SPECIFICITY, CompressionPlan, PatternError, PlanError
from studio.core.techniques import all_techniques
from studio.core.techniques.base import Technique, TechniqueConfig

if TYPE_CHECKING:
    from torch import nn

Assignments = dict[str, dict[str, TechniqueConfig]]  # technique → layer → config (model order)


def resolve(plan: CompressionPlan, model: nn.Module) -> Assignments:
    """Apply the precedence rules; raise PlanError listing all problems found."""
    assignments, problems = resolve_with_problems(plan, model)
    if problems:
        raise PlanError(problems)
    return assignments


def resolve_with_problems(plan: CompressionPlan, model: nn.Module) -> tuple[Assignments, list[str]]:
    """Lenient form for live editing: the valid assignments plus every problem found."""
    techniques = all_techniques()
    modules = dict(model.named_modules())
    problems: list[str] = []
    broken: set[int] = set()  # rules whose regex failed; they select nothing
    for index, rule in enumerate(plan.rules):
        where = f"rule {index + 1} ({rule.layers if len(rule.layers) <= 40 else rule.layers[:40] + '...'})"
        try:
            matched = [n for n in modules if n and rule.matches(n)]
        except PatternError as exc:
            problems.append(f"{where}: {exc}.")
            broken.add(index)
            continue
        if not matched:
            problems.append(f"{where}: matches no layer of this model.")
            continue
        for key, config in rule.techniques.items():
            if config is None:
                continue
            problems += [f"{where}: {key}: {p}" for p in config.problems()]
            supported = [n for n in matched if techniques[key].supports(modules[n])]
            if rule.kind == "exact" and not supported:
                problems.append(f"{where}: {key} does not apply to {type(modules[rule.layers]).__name__} "
                                f"layers ({techniques[key].label} supports {techniques[key].supported_types}).")
            elif not supported:
                problems.append(f"{where}: matches {len(matched)} layer(s) but none that {key} supports "
                                f"({techniques[key].supported_types}).")
    assignments: Assignments = {key: {} for key in techniques}
    for name, module in modules.items():
        if not name:
            continue
        for key, technique in techniques.items():
            if not technique.supports(module):
                continue
            winner = _winning_config(plan, name, key, problems, broken)
            if winner is not None:
                assignments[key][name] = winner
    for key, layers in assignments.items():
        for name, config in layers.items():
            problems += [f"layer {name}: {key}: {p}" for p in techniques[key].check(name, modules[name], config)]
    problems += _conflicts(techniques, assignments, modules)
    return {key: layers for key, layers in assignments.items() if layers}, _unique(problems)


def _conflicts(techniques: dict[str, Technique], assignments: Assignments, modules: dict[str, nn.Module]) -> list[str]:
    """Each technique says which others it cannot share a layer with (e.g. structured pruning
    of a layer that rank reduction replaces)."""
    problems = []
    for name in modules:
        on_layer = [(key, layers[name]) for key, layers in assignments.items() if name in layers]
        for key, config in on_layer:
            for other_key, other_config in on_layer:
                if other_key != key:
                    problem = techniques[key].conflicts(config, techniques[other_key], other_config)
                    if problem:
                        problems.append(f"layer {name}: {problem}")
    return problems


def _winning_config(plan: CompressionPlan, name: str, key: str, problems: list[str],
                    broken: set[int] = frozenset()) -> TechniqueConfig | None:
    best_level, best = 0, []
    for index, rule in enumerate(plan.rules):
        if index in broken or key not in rule.techniques or not rule.matches(name):
            continue
        level = SPECIFICITY[rule.kind]
        if level > best_level:
            best_level, best = level, [(index, rule.techniques[key])]
        elif level == best_level:
            best.append((index, rule.techniques[key]))
    configs = {repr(config) for _, config in best}
    if len(configs) > 1:
        rules = ", ".join(f"rule {i + 1} ({plan.rules[i].layers})" for i, _ in best)
        problems.append(f"layer {name}: conflicting {key} settings from {rules}; make one rule more specific.")
        return None
    return best[0][1] if best else None


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
