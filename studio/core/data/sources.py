"""Datasets named by a data spec, the same on the CLI and in the window:

`digits`, `sample` (the sample model's own data), `imagefolder:PATH`, `csv:PATH`
(text,label), and unlabeled calibration data: `random`, `tensors:PATH` (.npy/.safetensors).
"""

from __future__ import annotations

import random as _random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from studio.core.errors import StudioError
from studio.core.loaded_model import LoadedModel

SPLIT_SEED = 0
VAL_FRACTION = 0.2
RANDOM_SAMPLES = 64
BUCKET_POOL = 50  # training: batches per pool whose samples are sorted by length before batching
# Validation text is sorted by length within pools of this many samples: batches of similar lengths pay
# only for real tokens, while the first N samples (export verification takes them) stay a fair sample.
EVAL_POOL = 1024
DATA_SPECS = "digits, sample, imagefolder:PATH, csv:PATH, random[:N], tensors:PATH"


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


def _split(n: int, seed: int = SPLIT_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = min(n - 1, max(1, int(round(n * (1 - VAL_FRACTION))))) if n > 1 else 1  # both splits non-empty
    return order[:cut], order[cut:] if n > 1 else order


def open_dataset(spec: str, loaded: LoadedModel) -> Dataset:
    """Open the data spec for this model; every bad input is one StudioError, including data
    that does not fit the model (checked on two rows before any run)."""
    from studio.core.data.checks import check_fits

    return check_fits(_open_dataset(spec, loaded), loaded)


def _open_dataset(spec: str, loaded: LoadedModel) -> Dataset:
    kind, _, arg = spec.partition(":")
    if arg and kind in ("sample", "digits", "rotten-tomatoes"):
        raise StudioError(f"Data spec {spec!r}: {kind} takes no argument; use {kind!r}.")
    if kind == "sample":
        kind = loaded.extras.get("data") or ""
        if not kind:
            raise StudioError(f"{loaded.name} has no data of its own; use one of: {DATA_SPECS}.")
    if kind == "digits":
        return _digits()
    if kind == "rotten-tomatoes":
        return _snippets(loaded)
    if kind == "random":
        if arg and not (arg.isdigit() and 1 <= int(arg) <= 100_000):
            raise StudioError(f"Data spec {spec!r}: random:N takes a number of samples from 1 to 100000.")
        return _random_inputs(loaded, int(arg) if arg else RANDOM_SAMPLES)
    if kind in ("imagefolder", "csv", "tensors"):
        query = ""
        if kind == "imagefolder":  # imagefolder:PATH?mean=…&std=… (normalisation)
            arg, _, query = arg.partition("?")
        if not arg:
            raise StudioError(f"Data spec {spec!r} needs a path: {kind}:PATH.")
        path = Path(arg).expanduser()
        if not path.exists():
            raise StudioError(f"{path}: no such file or directory (data spec {spec!r}).")
        from studio.core.data import file_sources

        if kind == "imagefolder":
            return file_sources.imagefolder(path, loaded, query)
        return {"csv": file_sources.csv_text, "tensors": file_sources.tensor_file}[kind](path, loaded)
    raise StudioError(f"Unknown data spec {spec!r}; use one of: {DATA_SPECS}.")


def _digits() -> Dataset:
    from studio.core.data.digits import digits_split

    s = digits_split()
    x = torch.cat([s.x_train, s.x_test])
    y = torch.cat([s.y_train, s.y_test])
    n_train = len(s.x_train)
    return Dataset("digits", {"input": x}, y, False, torch.arange(n_train), torch.arange(n_train, len(x)),
                   [str(i) for i in range(10)])


def _snippets(loaded: LoadedModel) -> Dataset:
    from studio.core.data.rotten_tomatoes import LABELS, snippets_split
    from studio.core.data.tokenize import tokenize_texts
    from studio.core.samples.minilm_sentiment import SEQ_LEN, load_tokenizer

    split = snippets_split()
    rows = split.train + split.test
    enc = tokenize_texts(load_tokenizer(), [t for t, _ in rows], SEQ_LEN)
    labels = torch.tensor([y for _, y in rows])
    n_train = len(split.train)
    return Dataset("rotten-tomatoes", {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]},
                   labels, True, torch.arange(n_train), torch.arange(n_train, len(rows)), list(LABELS))


def _random_inputs(loaded: LoadedModel, samples: int = RANDOM_SAMPLES) -> Dataset:
    """Unlabeled inputs from the input spec: enough to calibrate and to measure fidelity."""
    spec = loaded.input_spec
    per_call = spec.tensors[0].shape[0]
    calls = max(1, -(-samples // per_call))
    parts = [spec.make_inputs(seed=1000 + i) for i in range(calls)]
    names = [t.name for t in spec.tensors]
    inputs = {}
    for j, name in enumerate(names):
        inputs[name] = torch.cat([(kw[name] if spec.keyword else args[j]) for args, kw in parts])
    train, val = _split(len(inputs[names[0]]))
    return Dataset("random", inputs, None, spec.keyword, train, val)


def shuffle_rows(rows: list, seed: int = SPLIT_SEED) -> list:
    rows = list(rows)
    _random.Random(seed).shuffle(rows)
    return rows
