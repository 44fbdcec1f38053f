"""The naive loop the fast path is checked and benchmarked against: for each cell, the ordinary
pipeline pieces (one-rule plan → editable copy → apply → evaluate every batch from the input)."""

from __future__ import annotations

import torch

from studio.core.pipelines.apply import apply_assignments_, editable_copy
from studio.core.model.measure import primary_output
from studio.core.plan import CompressionPlan
from studio.core.plan.resolve import resolve
from studio.core.pipelines.sensitivity.engine import Batches, Scorer
from studio.core.pipelines.sensitivity.result import SweepSetting
from studio.core.pipelines.sensitivity.settings import layer_rule
from studio.core.techniques.base import ApplyContext


def naive_value(model: torch.nn.Module, batches: Batches, scorer: Scorer, name: str, setting: SweepSetting,
                example_inputs: tuple, reference_each_cell: bool = False) -> float:
    """`reference_each_cell`: evaluate the original too, as a one-change run of the run pipeline
    does (the loop the issue timed); otherwise the original outputs come once, from `scorer`."""
    rule = layer_rule(setting, model.get_submodule(name))
    plan = CompressionPlan.from_dict({"rules": [{"layers": name, **rule}]})
    assignments = resolve(plan, model)
    changed = editable_copy(model, assignments)
    list(apply_assignments_(changed, assignments, ApplyContext(example_inputs)))
    changed.eval()
    outs = []
    with torch.no_grad():
        for args, kwargs in batches:
            outs.append(primary_output(changed(*args, **kwargs)).float())
        if reference_each_cell:
            reference = torch.cat([primary_output(model(*a, **k)).float() for a, k in batches])
            scorer = Scorer.from_reference(reference, scorer.labels if scorer.metric == "accuracy" else None)
    return scorer.score(torch.cat(outs))
