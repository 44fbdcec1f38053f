"""Metrics of a model on a dataset: loss and top-1 accuracy when labels exist, and always
fidelity to the original (top-1 agreement, KL divergence, cosine); batch-1 latency is
`pipelines.latency` (interleaved, with an interval)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from studio.core.data.dataset import Dataset
from studio.core.data.text import is_causal_text, next_token_nll
from studio.core.model.measure import primary_output


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


def iter_predict(model: nn.Module, dataset: Dataset, split: str = "val", batch_size: int = 64,
                 device: torch.device | None = None, *, pad: str = "longest") -> Iterator[torch.Tensor]:
    """Primary outputs batch by batch, on the CPU, in dataset order; `device` is where the model
    lives (the inputs go there). Pipelines drive this to report progress and honour cancel.
    Text batches are cut to their longest sequence (same outputs, a fraction of the compute)."""
    model.eval()
    move = (lambda t: t.to(device)) if device is not None and device.type != "cpu" else (lambda t: t)
    for args, kwargs, _ in dataset.batches(split, batch_size, pad=pad):
        with torch.no_grad():
            out = model(*[move(a) for a in args], **{k: move(v) for k, v in kwargs.items()})
        yield primary_output(out).float().cpu()


def metrics_from(outputs: list[torch.Tensor], dataset: Dataset, split: str = "val", batch_size: int = 64,
                 reference: list[torch.Tensor] | None = None) -> Metrics:
    """Loss/accuracy against the labels and fidelity against `reference` outputs, from outputs
    already computed (batched as `dataset.batches(split, batch_size)`, either padding)."""
    labels = [y for _, _, y in dataset.batches(split, batch_size)]
    n = sum(len(o) for o in outputs)
    result: dict[str, float] = {}
    if is_causal_text(dataset) and outputs:  # next-token loss over every predicted token
        ids = [kw["input_ids"] for _, kw, _ in dataset.batches(split, batch_size)]
        totals = [next_token_nll(o, i) for o, i in zip(outputs, ids)]
        result["loss"] = sum(t[0] for t in totals) / max(1, sum(t[1] for t in totals))
        result["perplexity"] = math.exp(min(result["loss"], 700.0))
    elif dataset.labeled and outputs and outputs[0].dim() == 2:
        result["loss"] = sum(float(F.cross_entropy(o, y, reduction="sum")) for o, y in zip(outputs, labels)) / n
        result["accuracy"] = sum(int((o.argmax(-1) == y).sum()) for o, y in zip(outputs, labels)) / n
    if reference is not None:
        flat_o = torch.cat([o.reshape(len(o), -1) for o in outputs])
        flat_r = torch.cat([r.reshape(len(r), -1) for r in reference])
        result["cosine"] = float(F.cosine_similarity(flat_o, flat_r, dim=-1).mean())
        if outputs[0].dim() == 2:
            result["agreement"] = float((flat_o.argmax(-1) == flat_r.argmax(-1)).float().mean())
            result["kl"] = float(F.kl_div(F.log_softmax(flat_o, -1), F.log_softmax(flat_r, -1), log_target=True,
                                          reduction="batchmean"))
    return Metrics(samples=n, **result)


def batch_one(dataset: Dataset) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """One validation sample at the stored (fixed) length: latency stays comparable across runs."""
    args, kwargs, _ = next(dataset.batches("val", 1))
    return args, kwargs
