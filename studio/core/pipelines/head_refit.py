"""Re-fitting the output layer after compressing (linear probing before fine-tuning, as in LP-FT,
Kumar et al. 2022): the compressed model's last Linear layer is fitted anew, in closed loop with
L-BFGS, on the features the compressed body now produces for the training split, with the run's
own loss (distillation from the original and/or the labels).

Why: structured pruning of a pretrained CNN moves its features, and a head fitted to the old ones
reads them as one class. EfficientNet-Lite0 + digits head, 30 % of every expand conv pruned:
10.0 % accuracy, while a logistic regression refitted on the pruned model's pooled features
reaches 95.3 % (the unpruned original: 94.4 %) — the features survived, the head's reading did
not. Gradient steps at a backbone's learning rate need many epochs to re-learn the head (1 epoch
at 1e-4: 48.7 %). Kept only if the validation metric improves (never silently worse)."""

from __future__ import annotations

import copy
from typing import Any, Iterator

import torch
from torch import nn

from studio.core.base.cancel import CancelToken
from studio.core.base.events import Note, Progress
from studio.core.data.dataset import Dataset
from studio.core.model.measure import primary_output
from studio.core.pipelines.evaluate import Metrics, validation_metrics
from studio.core.pipelines.finetune import FinetuneSettings, distillation_loss, output_layer

BATCH = 32
MAX_BATCHES = 64       # ≤ 2,048 training samples: a linear layer's fit needs no more
ITERATIONS = 200       # L-BFGS iterations (each a pass over the cached features: milliseconds)
WEIGHT_DECAY = 1e-3    # L2 on the weights, per sample (sklearn's C = 0.5 on ~1,000 samples is ~1e-3)


def features_and_targets(model: nn.Module, teacher: nn.Module, layer: nn.Linear, dataset: Dataset,
                         cancel: CancelToken) -> Iterator[object]:
    """The output layer's inputs on training batches (eval mode), the original's outputs and the
    labels; returns None when the layer's output is not the model's output (something follows it)."""
    seen: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda _m, args, out: seen.update(x=args[0], y=out))
    feats, teacher_out, labels = [], [], []
    total = min(dataset.steps("train", BATCH), MAX_BATCHES)
    model.eval()
    try:
        for step, (args, kwargs, y) in enumerate(dataset.batches("train", BATCH, shuffle=True, seed=0,
                                                                 pad="longest"), 1):
            if step > total:
                break
            cancel.raise_if_cancelled()
            with torch.no_grad():
                out = primary_output(model(*args, **kwargs))
                if "y" not in seen or seen["y"].shape != out.shape or not torch.equal(seen["y"], out):
                    return None
                feats.append(seen["x"].reshape(len(out), -1).float())
                teacher_out.append(primary_output(teacher(*args, **kwargs)).float())
            if y is not None:
                labels.append(y)
            yield Progress(step, total, "re-fitting the output layer: features")
    finally:
        handle.remove()
    return torch.cat(feats), torch.cat(teacher_out), (torch.cat(labels) if labels else None)


def fit_linear(layer: nn.Linear, feats: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor | None,
               settings: FinetuneSettings) -> None:
    """Fit `layer` in place, from its current weights, with the fine-tuning loss plus L2."""
    weight = layer.weight.detach().clone().float().requires_grad_(True)
    bias = (layer.bias.detach().clone().float() if layer.bias is not None
            else torch.zeros(weight.shape[0])).requires_grad_(True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=ITERATIONS, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        logits = feats @ weight.T + bias
        if settings.distill:
            loss = distillation_loss(logits, teacher, labels, settings.alpha, settings.temperature)
        else:
            loss = nn.functional.cross_entropy(logits, labels)
        loss = loss + WEIGHT_DECAY * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        if torch.isfinite(weight).all() and torch.isfinite(bias).all():
            layer.weight.copy_(weight)
            if layer.bias is not None:
                layer.bias.copy_(bias)


def head_refit_stage(student: nn.Module, teacher: nn.Module, dataset: Dataset, settings: FinetuneSettings,
                     cancel: CancelToken, reference: list[torch.Tensor], start: Metrics) -> Iterator[object]:
    """A run's step after compressing: re-fit the output layer of a copy, evaluate it, keep it
    only if the task metric is better. Returns (model, its validation metrics, kept, why)."""
    candidate = copy.deepcopy(student)  # untouched layers may still be shared with the original
    layer = output_layer(candidate)
    if not isinstance(layer, nn.Linear):
        return student, start, False, "the model's last layer is not a Linear layer"
    fitted: Any = yield from features_and_targets(candidate, teacher, layer, dataset, cancel)
    if fitted is None:
        return student, start, False, "the last Linear layer's output is not the model's output"
    feats, targets, labels = fitted
    if not settings.distill and labels is None:
        return student, start, False, "no labels and no distillation"
    fit_linear(layer, feats, targets, labels, settings)
    metrics, _ = yield from validation_metrics(candidate, dataset, cancel, "re-fitted", reference=reference)
    metric = start.task_metric
    change = f"{metric} {getattr(start, metric):.4g} → {getattr(metrics, metric):.4g}"
    if metrics.finite() and metrics.key() > start.key():
        yield Note(f"output layer re-fitted on {len(feats)} training samples' features: {change}")
        return candidate, metrics, True, change
    yield Note(f"re-fitting the output layer did not help ({change}); kept it as it was")
    return student, start, False, change
