"""The dataset every pipeline reads: inputs keyed like the model's call, labels, and a fixed
train/validation split (the validation rows are never used for training or calibration)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

import torch

SPLIT_SEED = 0
VAL_FRACTION = 0.2
BUCKET_POOL = 50  # training: batches per pool whose samples are sorted by length before batching
# Validation text is sorted by length within pools of this many samples: batches of similar lengths pay
# only for real tokens, while the first N samples (export verification takes them) stay a fair sample.
EVAL_POOL = 1024


@dataclass
class Dataset:
    """Inputs as (N, ...) tensors keyed like the model's call (positional when `keyword` is
    False), labels or None, split into train and validation."""

    name: str
    inputs: dict[str, torch.Tensor]
    labels: torch.Tensor | None
    keyword: bool
    train_idx: torch.Tensor
    val_idx: torch.Tensor
    classes: list[str] = field(default_factory=list)
    lengths: torch.Tensor | None = field(init=False, default=None, repr=False)  # real tokens per text row
    sequence_keys: tuple[str, ...] = field(init=False, default=(), repr=False)

    def __post_init__(self) -> None:
        self.lengths, self.sequence_keys = _token_lengths(self.inputs)
        if self.lengths is not None:  # evaluation order: by length within pools (see EVAL_POOL)
            self.val_idx = torch.cat([pool[torch.argsort(self.lengths[pool], stable=True)]
                                      for pool in self.val_idx.split(EVAL_POOL)]) if len(self.val_idx) else self.val_idx

    @property
    def labeled(self) -> bool:
        return self.labels is not None

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def batches(self, split: str, batch_size: int, shuffle: bool = False, seed: int = 0, *,
                pad: str = "fixed") -> Iterator[tuple[tuple[Any, ...], dict[str, Any], torch.Tensor | None]]:
        """Batches of `split` in a fixed order (validation text: by length within pools). pad="longest"
        cuts text batches to their longest sequence (the attention mask hides the rest, so the
        outputs are the same); "fixed" keeps the stored length, as exports and latency need.
        Shuffled text batches are length-bucketed: similar lengths share a batch."""
        if pad not in ("fixed", "longest"):
            raise ValueError(f"pad must be 'fixed' or 'longest', not {pad!r}")
        for part in self._index_batches(split, batch_size, shuffle, seed):
            values = {k: v[part] for k, v in self.inputs.items()}
            if pad == "longest" and self.lengths is not None and len(part):
                longest = int(self.lengths[part].max())
                values = {k: v[:, :longest] if k in self.sequence_keys else v for k, v in values.items()}
            labels = self.labels[part] if self.labels is not None else None
            if self.keyword:
                yield (), values, labels
            else:
                yield tuple(values.values()), {}, labels

    def _index_batches(self, split: str, batch_size: int, shuffle: bool, seed: int) -> list[torch.Tensor]:
        idx = self.train_idx if split == "train" else self.val_idx
        if not shuffle:
            return list(idx.split(batch_size))
        generator = torch.Generator().manual_seed(seed)
        idx = idx[torch.randperm(len(idx), generator=generator)]
        if self.lengths is None:
            return list(idx.split(batch_size))
        parts = []
        for pool in idx.split(batch_size * BUCKET_POOL):  # sort within pools: random batches, even lengths
            pool = pool[torch.argsort(self.lengths[pool], stable=True)]
            parts.extend(pool.split(batch_size))
        return [parts[i] for i in torch.randperm(len(parts), generator=generator).tolist()]

    def steps(self, split: str, batch_size: int) -> int:
        n = len(self.train_idx if split == "train" else self.val_idx)
        return (n + batch_size - 1) // batch_size

    def tokens(self, split: str, batch_size: int, pad: str = "longest") -> int:
        """Token positions one pass over `split` computes (0 for non-text data), for reports."""
        if self.lengths is None:
            return 0
        stored = self.inputs[self.sequence_keys[0]].shape[1]
        return sum(len(p) * (int(self.lengths[p].max()) if pad == "longest" else stored)
                   for p in self._index_batches(split, batch_size, False, 0))


def _token_lengths(inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, tuple[str, ...]]:
    """Real tokens per row from a right-padded attention mask (None when there is none or the
    padding is not on the right), and the inputs that carry the sequence dimension."""
    mask = inputs.get("attention_mask")
    if mask is None or mask.dim() != 2 or mask.shape[1] < 2:
        return None, ()
    lengths = (mask != 0).sum(1)
    if not torch.equal(mask != 0, torch.arange(mask.shape[1]) < lengths.unsqueeze(1)):
        return None, ()
    keys = tuple(k for k, v in inputs.items() if v.dim() >= 2 and v.shape[:2] == mask.shape)
    return lengths.clamp(min=1), keys


def split_indices(n: int, seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = min(n - 1, max(1, int(round(n * (1 - VAL_FRACTION))))) if n > 1 else 1  # both splits non-empty
    return order[:cut], order[cut:] if n > 1 else order


