"""Turn a plan into per-technique layer assignments for one model, or list every problem.

A pattern (glob, regex or the default `*`) means "the layers this applies to": a layer it
reaches that the technique cannot take (a depthwise conv or the output layer for structured
pruning, a rank that saves nothing) is skipped, and each rule says once which layers it skipped
and why (`Resolution.warnings`). An exact layer name keeps the error: the user asked for that
layer. A pattern that leaves no layer at all is an error too. The what-if projection and the run
both resolve here, so they take the same layers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from studio.core.plan import SPECIFICITY, CompressionPlan, PatternError, PlanError
from studio.core.techniques import all_techniques
from studio.core.techniques.base import Technique, TechniqueConfig

if TYPE_CHECKING:
    from torch import nn

Assignments = dict[str, dict[str, TechniqueConfig]]  # technique → layer → config (model order)
ExampleInputs = tuple[tuple[Any, ...], dict[str, Any]]
SHOWN_NAMES = 3  # layer names a skip warning lists per reason before '… (+N)'


@dataclass(frozen=True)
class Resolution:
    """The plan on one model: what each technique takes, what stops the plan, and per rule and
    technique one warning naming the matched layers it skipped (`skipped`: technique → layer →
    the reason)."""

    assignments: Assignments
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)


def resolve(plan: CompressionPlan, model: nn.Module, example_inputs: ExampleInputs | None = None) -> Assignments:
    """Apply the precedence rules; raise PlanError listing all problems found."""
    resolution = resolve_plan(plan, model, example_inputs)
    if resolution.problems:
        raise PlanError(list(resolution.problems))
    return resolution.assignments


def resolve_with_problems(plan: CompressionPlan, model: nn.Module) -> tuple[Assignments, list[str]]:
    """Lenient form for live editing: the valid assignments plus every problem found."""
    resolution = resolve_plan(plan, model)
    return resolution.assignments, list(resolution.problems)


def resolve_plan(plan: CompressionPlan, model: nn.Module, example_inputs: ExampleInputs | None = None,
                 cached: bool = False) -> Resolution:
    """With `example_inputs`, each technique's whole-model check runs too (e.g. structured
    pruning's output layer, found by tracing); `cached`: the check may reuse a trace kept for
    the projection (the window's model is never changed, the run's may be)."""
    techniques = all_techniques()
    modules = dict(model.named_modules())
    problems: list[str] = []
    broken = _check_rules(plan, modules, techniques, problems)
    assignments: Assignments = {key: {} for key in techniques}
    winners: dict[tuple[str, str], int] = {}  # (technique, layer) → the index of the rule that gives its config
    for name, module in modules.items():
        if not name:
            continue
        for key, technique in techniques.items():
            if not technique.supports(module):
                continue
            index = _winning_rule(plan, name, key, problems, broken)
            if index is not None:
                assignments[key][name] = plan.rules[index].techniques[key]
                winners[key, name] = index
    skipped: dict[str, dict[str, str]] = {}

    def unfit(key: str, name: str, reasons: list[str], as_problems: list[str]) -> None:
        if plan.rules[winners[key, name]].kind == "exact":
            problems.extend(as_problems)
        else:
            skipped.setdefault(key, {})[name] = reasons[0]
            del assignments[key][name]

    for key, layers in assignments.items():
        for name, config in list(layers.items()):
            found = techniques[key].check(name, modules[name], config)
            if found:
                unfit(key, name, found, [f"layer {name}: {key}: {p}" for p in found])
    if example_inputs is not None:
        for key, layers in assignments.items():
            if not layers:
                continue
            check = techniques[key].check_model_cached if cached else techniques[key].check_model
            for problem in check(model, dict(layers), example_inputs):
                name = _layer_of(problem, key, layers)
                if name is None:
                    problems.append(problem)  # whole-model (e.g. untraceable) or about another layer
                else:
                    unfit(key, name, [problem.split(f": {key}: ", 1)[1]], [problem])
    warnings = _skip_summaries(plan, techniques, assignments, winners, skipped, problems)
    problems += _conflicts(techniques, assignments, modules)
    assignments = {key: layers for key, layers in assignments.items() if layers}
    return Resolution(assignments, tuple(_unique(problems)), tuple(warnings), skipped)


def _check_rules(plan: CompressionPlan, modules: dict[str, nn.Module], techniques: dict[str, Technique],
                 problems: list[str]) -> set[int]:
    """Rule-level problems (no match, bad settings, a type the technique never takes); returns
    the rules whose regex failed: they select nothing."""
    broken: set[int] = set()
    for index, rule in enumerate(plan.rules):
        where = _where(plan, index)
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
                problems.append(f"{where}: matches {len(matched)} layer(s) but none that {_what(techniques[key], config)} "
                                f"can take (it takes {techniques[key].supported_types}).")
    return broken


def _skip_summaries(plan: CompressionPlan, techniques: dict[str, Technique], assignments: Assignments,
                    winners: dict[tuple[str, str], int], skipped: dict[str, dict[str, str]],
                    problems: list[str]) -> list[str]:
    """One warning per rule and technique that skipped layers, the reasons grouped; a rule left
    with no layer at all is a problem instead."""
    warnings = []
    for key, layers in skipped.items():
        by_rule: dict[int, dict[str, str]] = {}
        for name, reason in layers.items():
            by_rule.setdefault(winners[key, name], {})[name] = reason
        for index, rule_layers in sorted(by_rule.items()):
            taken = sum(1 for name in assignments[key] if winners[key, name] == index)
            what = _what(techniques[key], plan.rules[index].techniques[key])
            reasons = _grouped(rule_layers)
            if taken:
                warnings.append(f"{_where(plan, index)}: skipped {len(rule_layers)} layer(s) that {what} cannot "
                                f"take ({taken} taken) — {reasons}")
            else:
                problems.append(f"{_where(plan, index)}: matches no layer that {what} can take — {reasons}")
    return warnings


def _grouped(layers: dict[str, str]) -> str:
    """'16: a depthwise/grouped conv follows its input channels (a, b, c, … +13); 1: …': the
    cause before any advice, grouped with its numbers ignored (amounts, sizes)."""
    groups: dict[str, tuple[set[str], list[str]]] = {}
    causes: dict[str, str] = {}
    for name, reason in layers.items():
        cause = reason.split("; ", 1)[0].rstrip(".")
        kind = re.sub(r"\d+(\.\d+)?", "#", cause)
        causes.setdefault(kind, cause)
        group = groups.setdefault(kind, (set(), []))
        group[0].add(cause)
        group[1].append(name)
    parts = []
    for kind, (distinct, names) in sorted(groups.items(), key=lambda item: -len(item[1][1])):
        shown = ", ".join(names[:SHOWN_NAMES]) + (f", … (+{len(names) - SHOWN_NAMES})" if len(names) > SHOWN_NAMES else "")
        parts.append(f"{len(names)}{', e.g.' if len(distinct) > 1 else ''}: {causes[kind]} ({shown})")
    return "; ".join(parts)


def _layer_of(problem: str, key: str, layers: dict[str, TechniqueConfig]) -> str | None:
    """The target a whole-model check problem is about: techniques word them 'layer NAME: KEY: …'."""
    if not problem.startswith("layer ") or f": {key}: " not in problem:
        return None
    name = problem[len("layer "):].split(f": {key}: ", 1)[0]
    return name if name in layers else None


def _what(technique: Technique, config: TechniqueConfig) -> str:
    return f"{technique.noun or technique.name} ({config.summary()})"


def _where(plan: CompressionPlan, index: int) -> str:
    layers = plan.rules[index].layers
    return f"rule {index + 1} ({layers if len(layers) <= 40 else layers[:40] + '...'})"


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


def _winning_rule(plan: CompressionPlan, name: str, key: str, problems: list[str],
                  broken: set[int] = frozenset()) -> int | None:
    """The index of the most specific rule giving `name` a `key` config (None: no rule, an
    exclusion, or a conflict, which is added to `problems`)."""
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
    if not best or best[0][1] is None:
        return None
    return best[0][0]


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
