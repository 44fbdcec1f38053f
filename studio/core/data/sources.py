"""Datasets named by a data spec, the same on the CLI and in the window:

`digits`, `sample` (the sample model's own data), `imagefolder:PATH`, `csv:PATH`
(text,label), `text:PATH` (plain text in token windows, for causal LMs: perplexity), and
unlabeled calibration data: `random`, `tensors:PATH` (.npy/.safetensors).
"""

from __future__ import annotations

from pathlib import Path

import torch

from studio.core.base.errors import StudioError
from studio.core.data.specs import DATA_SPECS
from studio.core.data.dataset import Dataset, split_indices
from studio.core.model.loaded_model import LoadedModel

RANDOM_SAMPLES = 64


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
    if kind in ("imagefolder", "csv", "tensors", "text"):
        query = ""
        if kind in ("imagefolder", "text"):  # imagefolder:PATH?mean=…&std=… (normalisation), text:PATH?window=N
            arg, _, query = arg.partition("?")
        if not arg:
            raise StudioError(f"Data spec {spec!r} needs a path: {kind}:PATH.")
        path = Path(arg).expanduser()
        if not path.exists():
            raise StudioError(f"{path}: no such file or directory (data spec {spec!r}).")
        from studio.core.data import file_sources

        if kind == "text":
            from studio.core.data.text import text_windows

            return text_windows(path, loaded, query)
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
    from studio.core.model.samples.minilm_sentiment import SEQ_LEN, load_tokenizer

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
    train, val = split_indices(len(inputs[names[0]]))
    return Dataset("random", inputs, None, spec.keyword, train, val)
