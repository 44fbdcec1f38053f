"""Metrics of a model on a dataset: loss and top-1 accuracy when labels exist, and always
fidelity to the original (top-1 agreement, KL divergence, cosine); batch-1 latency is
`pipelines.latency` (interleaved, with an interval)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from studio.core.base.cancel import CancelToken
from studio.core.base.events import EvaluationProgress
from studio.core.data.dataset import Dataset
from studio.core.data.text import is_causal_text, next_token_nll
from studio.core.model.measure import primary_output

EVAL_BATCH = 64  # validation batches: every evaluation (run, fine-tuning, BatchNorm, head re-fit) scores alike


@dataclass(frozen=True)
class Metrics:
    samples: int
    loss: float | None = None
    accuracy: float | None = None
    agreement: float | None = None
    kl: float | None = None
    cosine: float | None = None
    perplexity: float | None = None  # causal LMs on text: data (lower is better)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def task_metric(self) -> str:
        """What "better" means: accuracy with labels, else agreement with the original, else cosine."""
        return next((k for k in ("accuracy", "perplexity", "agreement", "cosine") if getattr(self, k) is not None),
                    "loss")

    def key(self) -> tuple[float, float]:
        """Higher is better; ties on the task metric go to the lower loss (or KL)."""
        main = getattr(self, self.task_metric)
        second = self.loss if self.loss is not None else self.kl
        value = -main if self.task_metric in ("loss", "perplexity") else main
        return (value if value is not None and math.isfinite(value) else -math.inf,
                -second if second is not None and math.isfinite(second) else -math.inf)

    def finite(self) -> bool:
        return all(math.isfinite(v) for v in asdict(self).values() if isinstance(v, float))


def iter_predict(model: nn.Module, dataset: Dataset, split: str = "val", batch_size: int = EVAL_BATCH,
                 device: torch.device | None = None, *, pad: str = "longest") -> Iterator[torch.Tensor]:
    """Primary outputs batch by batch, on the CPU, in dataset order; `device` is where the model
    lives (the inputs go there). Pipelines drive this to report progress and honour cancel.
    Text batches are cut to their longest sequence (same outputs, a fraction of the compute)."""
    model.eval()
    move = (lambda t: t.to(device)) if device is not None and device.type != "cpu" else (lambda t: t)
    for args, kwargs, _ in dataset.batches(split, batch_size, pad=pad):
        with torch.no_grad():
            out = model(*[move(a) for a in args], **{k: move(v) for k, v in kwargs.items()})
        box = [primary_output(out).float().cpu()]
        del out  # neither the rest of the output (a causal LM's key/value cache) nor, once handed over, the
        yield box.pop()  # primary output stays referenced here while the caller works and the next batch runs


class MetricSums:
    """The metrics of outputs fed batch by batch (in `dataset.batches(split, batch_size)` order)
    as running sums: neither the outputs nor their concatenation with the reference are ever
    held whole (a causal LM's logits are vocabulary × tokens × 4 bytes per window), and each
    window is scored on its own (a window's transients, not a batch's). `reference` rows are
    matched to output rows in order, whatever the batching of either."""

    def __init__(self, dataset: Dataset, split: str = "val", batch_size: int = EVAL_BATCH,
                 reference: Sequence[torch.Tensor] | None = None) -> None:
        self.causal = is_causal_text(dataset)
        self.labeled = dataset.labeled
        self._batches = dataset.batches(split, batch_size)
        self._reference = None if reference is None else (row for batch in reference for row in batch)
        self.samples = self.tokens = self.correct = self.agree = 0
        self.nll = self.cross_entropy = self.cosine = self.kl = 0.0
        self.classified: bool | None = None  # 2-D outputs (one score per class): accuracy, agreement, KL

    def add(self, output: torch.Tensor) -> None:
        _, kwargs, labels = next(self._batches)
        if self.classified is None:
            self.classified = output.dim() == 2
        self.samples += len(output)
        if self.causal:  # next-token loss over every predicted token, window by window
            ids = kwargs["input_ids"]
            for i in range(len(output)):
                nll, tokens = next_token_nll(output[i:i + 1], ids[i:i + 1])
                self.nll, self.tokens = self.nll + nll, self.tokens + tokens
        elif self.labeled and self.classified:
            self.cross_entropy += float(F.cross_entropy(output, labels, reduction="sum"))
            self.correct += int((output.argmax(-1) == labels).sum())
        if self._reference is not None:
            rows = [next(self._reference) for _ in range(len(output))]
            for out, ref in zip(output, rows):  # cosine_similarity's own formula, without its three copies
                x, y = out.reshape(-1), ref.reshape(-1).to(out.dtype)
                norms = torch.linalg.vector_norm(x).clamp_min(_EPS) * torch.linalg.vector_norm(y).clamp_min(_EPS)
                self.cosine += float(torch.dot(x, y) / norms)
            if self.classified:
                reference = torch.stack(rows)
                self.agree += int((output.argmax(-1) == reference.argmax(-1)).sum())
                self.kl += float(F.kl_div(F.log_softmax(output, -1), F.log_softmax(reference, -1), log_target=True,
                                          reduction="sum"))

    def metrics(self) -> Metrics:
        n, result = self.samples, {}
        if self.causal and n:
            result["loss"] = self.nll / max(1, self.tokens)
            result["perplexity"] = math.exp(min(result["loss"], 700.0))
        elif self.labeled and self.classified and n:
            result["loss"], result["accuracy"] = self.cross_entropy / n, self.correct / n
        if self._reference is not None and n:
            result["cosine"] = self.cosine / n
            if self.classified:
                result["agreement"], result["kl"] = self.agree / n, self.kl / n
        return Metrics(samples=n, **result)


_EPS = 1e-8  # F.cosine_similarity's default


def metrics_from(outputs: Iterable[torch.Tensor], dataset: Dataset, split: str = "val",
                 batch_size: int = EVAL_BATCH,
                 reference: Sequence[torch.Tensor] | None = None) -> Metrics:
    """Loss/accuracy against the labels and fidelity against `reference` outputs, from outputs
    already computed (batched as `dataset.batches(split, batch_size)`, either padding)."""
    sums = MetricSums(dataset, split, batch_size, reference)
    for output in outputs:
        sums.add(output)
    return sums.metrics()


def validation_metrics(model: nn.Module, dataset: Dataset, cancel: CancelToken, label: str,
                       batch_size: int = EVAL_BATCH,
                       device: torch.device | None = None, reference: Sequence[torch.Tensor] | None = None,
                       keep: bool = False) -> Iterator[object]:
    """The model's validation metrics, with progress per batch and a cancel check between
    batches; returns (metrics, the outputs if `keep` else None). Scored as they come: only the
    outputs asked to be kept (the original's, the reference of what follows) stay in memory."""
    total, sums, kept = dataset.steps("val", batch_size), MetricSums(dataset, "val", batch_size, reference), []
    for step, output in enumerate(iter_predict(model, dataset, "val", batch_size, device), 1):
        sums.add(output)
        if keep:
            kept.append(output)
        del output
        cancel.raise_if_cancelled()
        yield EvaluationProgress(step, total, f"evaluating the {label} model")
    return sums.metrics(), (kept if keep else None)


def batch_one(dataset: Dataset) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """One validation sample at the stored (fixed) length: latency stays comparable across runs."""
    args, kwargs, _ = next(dataset.batches("val", 1))
    return args, kwargs
