"""BatchNorm re-estimation after compression: pruning channels, quantizing or factorizing
changes what each later BatchNorm sees, but its running mean and variance still describe the
original network, so the compressed model normalizes with the wrong statistics (what AIMET calls
batch-norm re-estimation, and EagleEye's "adaptive BN" for pruned candidates). The fix is
PyTorch's own: reset the running statistics, set momentum to None (a cumulative average) and run
forward passes over training batches with only the BatchNorm layers in training mode (dropout
and stochastic depth stay off, so the statistics are those evaluation will see)."""

from __future__ import annotations

import copy
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from studio.core.base.cancel import CancelToken
from studio.core.base.events import Note, Progress
from studio.core.data.dataset import Dataset
from studio.core.pipelines.evaluate import Metrics, validation_metrics

MAX_BATCHES = 200  # "a few hundred" batches: enough for stable statistics, a fraction of an epoch's cost
BATCH = 32


def batchnorms(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """The BatchNorm layers that keep running statistics (those evaluation uses)."""
    return [m for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[tuple[tuple[Any, ...], dict[str, Any]]],
                          cancel: CancelToken | None = None, max_batches: int = MAX_BATCHES) -> Iterator[int]:
    """Re-estimate every BatchNorm's running statistics of `model` in place from `batches`
    ((args, kwargs) pairs, as Dataset.batches gives without labels); yields the number of batches
    seen so far (for progress). The model ends in eval mode, its momenta as they were."""
    norms = batchnorms(model)
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # running stats = the average over all batches seen
        m.train()
    seen = 0
    try:
        with torch.no_grad():
            for args, kwargs in batches:
                if seen >= max_batches:
                    break
                if cancel is not None:
                    cancel.raise_if_cancelled()
                if _size(args, kwargs) < 2:  # one sample has no batch variance to average
                    continue
                model(*args, **kwargs)
                seen += 1
                yield seen
    finally:
        for m, momentum, (mean, var, count) in zip(norms, momenta, saved):
            m.momentum = momentum
            if not seen:  # nothing seen (no usable batch, or cancelled at once): the old statistics stay
                m.running_mean.copy_(mean)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(count)
        model.eval()


def _size(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    first = next((t for t in (*args, *kwargs.values()) if isinstance(t, torch.Tensor)), None)
    return int(first.shape[0]) if first is not None and first.dim() else 0


def freeze_batchnorm(model: nn.Module) -> int:
    """Put the BatchNorm layers in eval mode (running statistics used and kept; their affine
    weights still train), after `model.train()`. Returns how many."""
    norms = batchnorms(model)
    for m in norms:
        m.eval()
    return len(norms)


def recalibration_stage(student: nn.Module, dataset: Dataset, cancel: CancelToken, reference: list[torch.Tensor],
                        start: Metrics) -> Iterator[object]:
    """A run's step after compressing: re-estimate the statistics on a copy of `student` from the
    training split, evaluate it, and keep it only if the task metric is better (never silently
    worse). Returns (model, its validation metrics, whether the recalibrated copy was kept)."""
    candidate = copy.deepcopy(student)  # untouched layers may still be shared with the original
    total = min(dataset.steps("train", BATCH), MAX_BATCHES)
    batches = ((args, kwargs) for args, kwargs, _ in dataset.batches("train", BATCH, shuffle=True, seed=0,
                                                                     pad="longest"))
    seen = 0
    for seen in recalibrate_batchnorm(candidate, batches, cancel):
        yield Progress(seen, total, "re-estimating BatchNorm statistics")
    if not seen:
        return student, start, False
    metrics, _ = yield from validation_metrics(candidate, dataset, cancel, "recalibrated", reference=reference)
    metric = start.task_metric
    change = f"{metric} {getattr(start, metric):.4g} → {getattr(metrics, metric):.4g}"
    if metrics.finite() and metrics.key() > start.key():
        yield Note(f"BatchNorm statistics re-estimated on {seen} training batches of {BATCH} "
                   f"({len(batchnorms(candidate))} layers): {change}")
        return candidate, metrics, True
    yield Note(f"BatchNorm statistics re-estimated on {seen} training batches did not help ({change}); "
               "kept the original statistics")
    return student, start, False
