"""Measuring cells: the metric, the savings, and one layer's change swapped in and out of the
loaded model (never copied) with upstream outputs replayed (`replay.PrefixReplay`)."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from studio.core.base.cancel import Cancelled
from studio.core.base.errors import StudioError
from studio.core.model.measure import primary_output
from studio.core.plan import CompressionPlan, Rule
from studio.core.pipelines.sensitivity.replay import PrefixReplay
from studio.core.pipelines.sensitivity.result import SensitivityCell, SweepSetting
from studio.core.pipelines.sensitivity.settings import cell_problem, layer_configs
from studio.core.techniques import all_techniques
from studio.core.techniques.base import ApplyContext

if TYPE_CHECKING:
    from studio.core.data.dataset import Dataset
    from studio.core.model.loaded_model import LoadedModel
    from studio.core.model.model_tree import ModelTree

BATCH_SIZE = 64
NEG_LOG_PPL = "-log perplexity"
Batches = list[tuple[tuple, dict]]


def sample_batches(dataset: Dataset, samples: int, batch_size: int = BATCH_SIZE) -> tuple[Batches, torch.Tensor | None]:
    """The first `samples` validation rows, batched once; every cell (naive or fast) sees these."""
    idx = dataset.val_idx
    if samples < len(idx):  # evenly spread (validation text may be ordered by length)
        idx = idx[torch.linspace(0, len(idx) - 1, samples).round().long()]
    subset = replace(dataset, val_idx=idx)
    try:  # text batches cut to their longest sequence where the dataset offers it: same outputs, less work
        rows = subset.batches("val", batch_size, pad="longest")
    except TypeError:
        rows = subset.batches("val", batch_size)
    batches, labels = [], []
    for args, kwargs, y in rows:
        batches.append((tuple(args), dict(kwargs)))
        if y is not None:
            labels.append(y)
        elif getattr(dataset, "causal_lm", False):  # text: data: the tokens are the labels (perplexity)
            labels.append(kwargs["input_ids"])
    return batches, (torch.cat(labels) if labels else None)


@dataclass
class Scorer:
    """Accuracy when labels exist, else top-1 agreement with the original, else output cosine; for
    a causal LM on text: data the negated log-perplexity (higher is better like the others; a drop
    of 0.01 is about 1% more perplexity)."""

    metric: str
    reference: torch.Tensor
    labels: torch.Tensor | None

    @classmethod
    def from_reference(cls, reference: torch.Tensor, labels: torch.Tensor | None) -> Scorer:
        classifier = reference.dim() == 2 and reference.shape[-1] > 1
        if labels is not None and labels.dim() == 2 and reference.dim() == 3:
            return cls(NEG_LOG_PPL, reference, labels)
        if labels is not None and classifier and len(labels) == len(reference):
            return cls("accuracy", reference, labels)
        return cls("agreement" if classifier else "cosine", reference, None)

    def score(self, outputs: torch.Tensor) -> float:
        if self.metric == NEG_LOG_PPL:
            from studio.core.data.text import next_token_nll

            total, count = next_token_nll(outputs, self.labels)
            return -total / max(1, count)
        if self.metric == "accuracy":
            return float((outputs.argmax(-1) == self.labels).float().mean())
        if self.metric == "agreement":
            return float((outputs.argmax(-1) == self.reference.argmax(-1)).float().mean())
        flat_o, flat_r = outputs.reshape(len(outputs), -1), self.reference.reshape(len(outputs), -1)
        return float(F.cosine_similarity(flat_o, flat_r, dim=-1).mean())


def forward_all(model: nn.Module, batches: Batches, check: Callable[[], None] = lambda: None,
                run: Callable[[int], Any] | None = None) -> torch.Tensor:
    outs = []
    with torch.inference_mode():
        for i, (args, kwargs) in enumerate(batches):
            check()
            out = run(i) if run is not None else model(*args, **kwargs)
            outs.append(primary_output(out).float())
    return torch.cat(outs)


def _aliases(model: nn.Module, target: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules(remove_duplicate=False) if m is target and n]


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    (model.get_submodule(parent) if parent else model)._modules[child] = module


class CellEngine:
    """Everything a worker needs to measure cells of one model on fixed batches."""

    def __init__(self, loaded: LoadedModel, batches: Batches, labels: torch.Tensor | None, tree: ModelTree,
                 fast: bool = True) -> None:
        self.loaded, self.model, self.batches, self.tree, self.fast = loaded, loaded.module, batches, tree, fast
        self.model.eval()
        self.example = loaded.example_inputs()
        self.scorer = Scorer.from_reference(forward_all(self.model, batches), labels)
        self.baseline = self.scorer.score(self.scorer.reference)
        self._replay: PrefixReplay | None = None
        self.fallbacks: set[str] = set()  # layers measured with full forwards
        self.all_quantized = math.nan  # the metric with every layer at the inverse view's setting

    # --- savings -----------------------------------------------------------------------------
    def savings(self, name: str, rule: dict) -> tuple[int, int, int, int]:
        """(params, bytes, flops, nonzero) the what-if projection says this one-layer rule saves."""
        from studio.core.plan.projection import project_plan

        plan = CompressionPlan.from_dict({"rules": [{"layers": name, **rule}]})
        p = project_plan(plan, self.model, self.tree, self.example)
        return (p.before.params - p.after.params, p.before.bytes - p.after.bytes, p.before.flops - p.after.flops,
                p.before.nonzero - p.after.nonzero)

    def problem(self, name: str, setting: SweepSetting) -> str | None:
        module = self.model.get_submodule(name)
        problem = cell_problem(name, module, setting)
        if problem:
            return problem
        techniques = all_techniques()
        for key, config in layer_configs(setting, module).items():
            found = techniques[key].check_model(self.model, {name: config}, self.example)
            if found:
                return "; ".join(found)
        return None

    def _cell(self, name: str, setting: SweepSetting, value: float, saved: tuple, error: str | None = None):
        drop = self.baseline - value if error is None else math.nan
        return SensitivityCell(name, setting.label, drop, value if error is None else math.nan,
                               int(saved[0]), int(saved[1]), int(saved[2]), error, int(saved[3]))

    # --- one layer, all its settings ---------------------------------------------------------
    def layer_cells(self, name: str, settings: tuple[SweepSetting, ...],
                    check: Callable[[], None] = lambda: None) -> Iterator[SensitivityCell]:
        """Cells of one layer; `check` raises Cancelled (checked between batches)."""
        module = self.model.get_submodule(name)
        pending = []
        for setting in settings:
            check()
            problem = self.problem(name, setting)
            rule = {k: v for k, v in layer_configs(setting, module).items()} if problem is None else {}
            saved = self.savings(name, {k: c.to_dict() for k, c in rule.items()}) if rule else (0, 0, 0, 0)
            if problem is None and not any(saved):
                problem = "no saving at this setting"
            if problem:
                yield self._cell(name, setting, math.nan, saved, problem)
            elif self._local(rule) and not self._tied(module):
                pending.append((setting, saved))
            else:  # changes reach other layers (structured pruning, tied weights): a copy, full forwards
                try:
                    value, error = self._copied_value(name, rule, check), None
                except Cancelled:
                    raise
                except Exception as exc:  # e.g. Torch-Pruning cannot trace or prune this model
                    value, error = math.nan, f"{type(exc).__name__}: {exc}"[:300]
                yield self._cell(name, setting, value, saved, error)
        if not pending:
            return
        replay = self._prefix()
        if replay is not None:
            replay.release()
        changed = []
        for setting, saved in pending:
            try:
                changed.append((setting, saved, self._replacement(name, module, layer_configs(setting, module), check)))
            except StudioError as exc:
                yield self._cell(name, setting, math.nan, saved, str(exc))
        replayed = replay is not None and replay.prepare(module, check)
        if not replayed:
            self.fallbacks.add(name)
        try:
            for setting, saved, (new, names) in changed:
                for n in names:
                    _set(self.model, n, new)
                error = None
                try:
                    value = self.scorer.score(forward_all(self.model, self.batches, check,
                                                          replay.run if replayed else None))
                except (Cancelled, StudioError):
                    raise
                except Exception as exc:  # the model's own code cannot run with this layer changed
                    value, error = math.nan, f"the model fails with this change ({type(exc).__name__}: {exc})"[:300]
                finally:
                    for n in names:
                        _set(self.model, n, module)
                yield self._cell(name, setting, value, saved, error)
        finally:
            if replay is not None:
                replay.release()

    def _tied(self, module: nn.Module) -> bool:
        """A weight shared with another module (tied embeddings): an in-place edit changes both."""
        own = {id(p) for p in module.parameters(recurse=False)}
        return any(m is not module and own & {id(p) for p in m.parameters(recurse=False)}
                   for m in self.model.modules())

    def _local(self, rule: dict) -> bool:
        techniques = all_techniques()
        return not any(techniques[key].changes_other_layers(c) for key, c in rule.items())

    def _prefix(self) -> PrefixReplay | None:
        if not self.fast:
            return None
        if self._replay is None:
            self._replay = PrefixReplay(self.model, self.batches)
        return self._replay

    def _replacement(self, name: str, module: nn.Module, configs: dict, check) -> tuple[nn.Module, list[str]]:
        """The changed layer, built on a copy of this one layer; the names to swap it in at
        (every name of a module changed in place, like the run's in-place edit; only `name`
        for a replaced module, as the run replaces it under one name)."""
        holder = nn.Module()
        holder.add_module("layer", copy.deepcopy(module))
        techniques = all_techniques()
        context = ApplyContext(self.example)
        for key in techniques:  # composition order
            if key in configs:
                check()
                changes = list(techniques[key].apply_(holder, {"layer": configs[key]}, context))
                if any(c.skipped for c in changes):
                    raise StudioError(f"{name}: {changes[0].detail}")
        new = holder.layer.eval()
        in_place = type(new) is type(module)
        return new, (_aliases(self.model, module) if in_place else [name])

    def _copied_value(self, name: str, rule: dict, check) -> float:
        from studio.core.pipelines.apply import apply_assignments_, editable_copy
        from studio.core.plan.resolve import resolve

        assignments = resolve(CompressionPlan((Rule(name, dict(rule)),)), self.model)
        model = editable_copy(self.model, assignments)
        list(apply_assignments_(model, assignments, ApplyContext(self.example)))
        return self.scorer.score(forward_all(model.eval(), self.batches, check))

    def inverse_cells(self, layers: tuple[str, ...], setting: SweepSetting, label: str,
                      check: Callable[[], None] = lambda: None) -> Iterator[SensitivityCell]:
        """Everything at `setting` except one layer at a time (AIMET QuantAnalyzer's view): a layer whose
        own return to float recovers much of the all-quantized drop should stay in float."""
        if self._replay is not None:
            self._replay.release()
        swapped: dict[str, tuple[nn.Module, nn.Module, tuple]] = {}
        for name in layers:
            check()
            module = self.model.get_submodule(name)
            if self.problem(name, setting) is None:
                rule = {k: c.to_dict() for k, c in layer_configs(setting, module).items()}
                new, _ = self._replacement(name, module, layer_configs(setting, module), check)
                swapped[name] = (module, new, self.savings(name, rule))
        total = [sum(s[2][i] for s in swapped.values()) for i in range(4)]
        replay = None
        try:
            for name, (old, new, _) in swapped.items():
                _set(self.model, name, new)
            self.all_quantized = self.scorer.score(forward_all(self.model, self.batches, check))
            replay = PrefixReplay(self.model, self.batches) if self.fast else None
            for name, (old, new, own) in swapped.items():
                replayed = replay is not None and replay.prepare(new, check)
                _set(self.model, name, old)
                try:
                    value = self.scorer.score(forward_all(self.model, self.batches, check,
                                                          replay.run if replayed else None))
                finally:
                    _set(self.model, name, new)
                saved = tuple(t - o for t, o in zip(total, own))
                yield replace(self._cell(name, setting, value, saved), setting=label)
        finally:
            if replay is not None:
                replay.close()
            for name, (old, _, _) in swapped.items():
                _set(self.model, name, old)

    def close(self) -> None:
        if self._replay is not None:
            self._replay.close()
            self._replay = None
