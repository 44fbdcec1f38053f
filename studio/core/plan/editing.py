"""Pure plan edits behind the window's tree actions. Plans are immutable, so undo/redo
just swaps the plan before and after an edit."""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable

from studio.core.plan import CompressionPlan, Rule, pattern_kind
from studio.core.techniques.base import TechniqueConfig


def mark_layers(plan: CompressionPlan, layers: Iterable[str], technique: str,
                config: TechniqueConfig | None) -> CompressionPlan:
    """Give each named layer `technique: config` with an exact-name rule (None excludes it)."""
    rules = list(plan.rules)
    for name in layers:
        index = _exact_rule_index(rules, name)
        if index is None:
            rules.append(Rule(name, {technique: config}))
        else:
            techniques = dict(rules[index].techniques)
            techniques[technique] = config
            rules[index] = Rule(name, techniques)
    return replace(plan, rules=tuple(rules))


def clear_layers(plan: CompressionPlan, layers: Iterable[str], technique: str | None = None) -> CompressionPlan:
    """Remove the layers' own settings for `technique` (all techniques if None). Where a
    pattern rule would still reach the layer, an exact `null` keeps it cleared."""
    rules = list(plan.rules)
    for name in layers:
        index = _exact_rule_index(rules, name)
        if index is not None:
            kept = {k: v for k, v in rules[index].techniques.items() if technique not in (None, k)}
            rules[index] = Rule(name, kept)
        reaching = {k for r in rules if r.kind != "exact" and r.matches(name) for k, v in r.techniques.items()
                    if v is not None and technique in (None, k)}
        if reaching:
            index = _exact_rule_index(rules, name)
            nulls = {k: None for k in sorted(reaching)}
            if index is None:
                rules.append(Rule(name, nulls))
            else:
                rules[index] = Rule(name, {**rules[index].techniques, **nulls})
    return replace(plan, rules=tuple(r for r in rules if r.techniques))


def add_pattern_rule(plan: CompressionPlan, pattern: str, technique: str, config: TechniqueConfig | None) -> CompressionPlan:
    """Append a rule; an identical selector is updated in place instead of duplicated."""
    rules = list(plan.rules)
    for index, rule in enumerate(rules):
        if rule.layers == pattern:
            rules[index] = Rule(pattern, {**rule.techniques, technique: config})
            return replace(plan, rules=tuple(rules))
    return replace(plan, rules=tuple(rules) + (Rule(pattern, {technique: config}),))


def remove_rule(plan: CompressionPlan, index: int) -> CompressionPlan:
    return replace(plan, rules=plan.rules[:index] + plan.rules[index + 1:])


def _exact_rule_index(rules: list[Rule], name: str) -> int | None:
    for index, rule in enumerate(rules):
        if rule.layers == name and pattern_kind(name) == "exact":
            return index
    return None
