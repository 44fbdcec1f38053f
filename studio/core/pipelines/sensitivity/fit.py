"""Target-driven plans: one sweep setting (or none) per layer, chosen as a multiple-choice
knapsack by exact dynamic programming on a discretized budget, with drops assumed additive.

- size / params / flops targets: least predicted drop whose saving reaches the target
  (savings rounded down to 1/`STEPS` of the needed saving, so the DP never overstates them);
- max_drop: the largest size saving whose predicted drop (rounded up to 1/`STEPS` of the
  allowed drop, negative drops counted as 0) stays within it.
The predicted size comes from the what-if projection of the resulting plan itself.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from studio.core.base.errors import StudioError
from studio.core.plan import CompressionPlan
from studio.core.pipelines.sensitivity.result import SensitivityCell, SensitivityResult
from studio.core.pipelines.sensitivity.settings import layer_rule
from studio.core.pipelines.sensitivity.spec import FittedPlan, Target

if TYPE_CHECKING:
    from studio.core.model.loaded_model import LoadedModel

STEPS = 2000
KINDS = ("size", "params", "flops", "max_drop")
_SAVED = {"size": "saved_bytes", "params": "saved_nonzero", "flops": "saved_flops", "max_drop": "saved_bytes"}


def _options(result: SensitivityResult, layers: tuple[str, ...], attr: str) -> list[list[SensitivityCell]]:
    out = []
    for name in layers:
        cells = [c for c in result.row(name) if c.ok and getattr(c, attr) > 0]
        out.append(cells)
    return out


def _solve_saving(options: list[list[SensitivityCell]], attr: str, need: float) -> list[SensitivityCell | None]:
    """Least total drop with total saving >= need (DP over saving units, the last state meaning ">= need")."""
    unit = max(need / STEPS, 1e-12)
    index = np.arange(STEPS + 1)
    dp = np.full(STEPS + 1, math.inf)
    dp[0] = 0.0
    steps: list[tuple[np.ndarray, np.ndarray]] = []
    for cells in options:
        best, pick, src = dp.copy(), np.full(STEPS + 1, -1), index.copy()
        for j, cell in enumerate(cells):
            w = min(int(getattr(cell, attr) / unit + 1e-9), STEPS)
            shifted, origin = np.full(STEPS + 1, math.inf), index - w
            shifted[w:] = dp[:STEPS + 1 - w]
            lo = STEPS - w
            k = lo + int(np.argmin(dp[lo:]))
            if dp[k] < shifted[STEPS]:  # any saving beyond the need lands in the last state
                shifted[STEPS], origin[STEPS] = dp[k], k
            shifted = shifted + cell.drop
            better = shifted < best
            best[better], pick[better], src[better] = shifted[better], j, origin[better]
        steps.append((pick, src))
        dp = best
    state = STEPS if np.isfinite(dp[STEPS]) else int(np.nonzero(np.isfinite(dp))[0].max())
    chosen: list[SensitivityCell | None] = []
    for cells, (pick, src) in zip(reversed(options), reversed(steps)):
        j = int(pick[state])
        chosen.append(None if j < 0 else cells[j])
        state = int(src[state])
    return list(reversed(chosen))


def _solve_drop(options: list[list[SensitivityCell]], attr: str, allowed: float) -> list[SensitivityCell | None]:
    """Largest total saving with total (non-negative, rounded-up) drop <= allowed."""
    unit = max(allowed / STEPS, 1e-12)
    dp = np.full(STEPS + 1, -math.inf)
    dp[0] = 0.0
    picks = []
    for cells in options:
        best = dp.copy()
        pick = np.full(STEPS + 1, -1)
        for j, cell in enumerate(cells):
            w = math.ceil(max(cell.drop, 0.0) / unit - 1e-9)
            if w > STEPS:
                continue
            shifted = np.full(STEPS + 1, -math.inf)
            shifted[w:] = dp[:STEPS + 1 - w] if w else dp
            shifted += getattr(cell, attr)
            better = shifted > best
            best[better], pick[better] = shifted[better], j
        picks.append(pick)
        dp = best
    state = int(np.argmax(dp))
    chosen = []
    for cells, pick in zip(reversed(options), reversed(picks)):
        j = int(pick[state])
        chosen.append(None if j < 0 else cells[j])
        if j >= 0:
            state -= math.ceil(max(cells[j].drop, 0.0) / unit - 1e-9)
    return list(reversed(chosen))


def fit_to_target(result: SensitivityResult, loaded: LoadedModel, target: Target) -> FittedPlan:
    from studio.core.model.inspection import inspect_model
    from studio.core.plan.projection import project_plan

    if target.kind not in KINDS:
        raise StudioError(f"Unknown target {target.kind!r}; use one of {', '.join(KINDS)}.")
    if not math.isfinite(target.value) or target.value < 0:
        raise StudioError(f"The {target.kind} target must be a non-negative number (got {target.value}).")
    if target.kind in ("params", "flops") and not 0 < target.value <= 1:
        raise StudioError(f"The {target.kind} target is the fraction to keep, between 0 and 1 (got {target.value}).")
    model = loaded.module
    missing = [n for n in result.layers if n not in dict(model.named_modules())]
    if missing:
        raise StudioError(f"The sensitivity table does not belong to this model (no layer {missing[0]!r}).")
    tree = inspect_model(model, loaded.input_spec)
    example = loaded.example_inputs()
    before = project_plan(CompressionPlan(), model, tree, example).before
    attr = _SAVED[target.kind]
    options = _options(result, result.layers, attr)
    total = {"size": before.bytes, "params": before.nonzero, "flops": before.flops}.get(target.kind, before.bytes)
    need = {"size": total - target.value, "params": total * (1 - target.value),
            "flops": total * (1 - target.value)}.get(target.kind, 0.0)
    for _attempt in range(4):  # coupled savings overlap a little; ask for the shortfall again
        if target.kind == "max_drop":
            chosen = _solve_drop(options, attr, target.value)
        else:
            chosen = [None] * len(options) if need <= 0 else _solve_saving(options, attr, need)
        plan = _plan(result.layers, chosen, model, result)
        after = project_plan(plan, model, tree, example).after
        drop = float(sum(c.drop for c in chosen if c is not None))
        achieved = {"size": after.bytes, "params": after.nonzero, "flops": after.flops}.get(target.kind)
        if target.kind == "max_drop":
            met = drop <= target.value + 1e-12
        else:
            limit = target.value if target.kind == "size" else total * target.value
            met = achieved <= limit
            if not met and need < total:
                need += achieved - limit
                continue
        break
    choices = tuple((n, c.setting) for n, c in zip(result.layers, chosen) if c is not None)
    return FittedPlan(plan=plan, predicted_drop=drop, predicted_params=after.params, predicted_bytes=after.bytes,
                      predicted_flops=after.flops, choices=choices, solver=f"exact DP ({STEPS} budget steps)", met=met)


def _plan(layers, chosen, model, result: SensitivityResult) -> CompressionPlan:
    rules = []
    for name, cell in zip(layers, chosen):
        if cell is not None:
            setting = result.setting(cell.setting)
            rules.append({"layers": name, **layer_rule(setting, model.get_submodule(name))})
    return CompressionPlan.from_dict({"rules": rules})
