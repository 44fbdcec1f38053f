"""`text:PATH[?window=N]` — a plain-text file for causal language models: tokenized whole with
the model folder's tokenizer and cut into fixed-length windows, each one sample (no padding).
Judged by perplexity: exp of the mean next-token loss over every predicted token, the same
number transformers' `labels=` loss gives window by window."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs

import torch
from torch.nn import functional as F

from studio.core.base.errors import StudioError
from studio.core.data.dataset import Dataset, split_indices
from studio.core.model.loaded_model import LoadedModel

DEFAULT_WINDOW = 128
MIN_WINDOW = 8
MAX_BYTES = 256 * 2**20  # a text file larger than this is not what a calibration set needs


@dataclass
class TextWindows(Dataset):
    """Windows of token ids; the labels are the ids themselves, shifted (`causal_lm`)."""

    causal_lm: ClassVar[bool] = True


def is_causal_text(dataset: object) -> bool:
    return bool(getattr(dataset, "causal_lm", False))


def next_token_nll(logits: torch.Tensor, input_ids: torch.Tensor) -> tuple[float, int]:
    """(summed negative log-likelihood, predicted tokens) of each position's next token."""
    if logits.dim() != 3 or logits.shape[:2] != input_ids.shape:
        raise StudioError(f"Perplexity needs next-token logits (batch x tokens x vocabulary) for the input ids "
                          f"{tuple(input_ids.shape)}; the model gives {tuple(logits.shape)}: open a causal "
                          "language model (…ForCausalLM) for text: data.")
    shifted = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    targets = input_ids[:, 1:].reshape(-1).to(shifted.device)
    return float(F.cross_entropy(shifted, targets, reduction="sum")), int(targets.numel())


def text_windows(path: Path, loaded: LoadedModel, query: str = "") -> TextWindows:
    window = _window(loaded, query, path)
    text = read_text(path)
    from studio.core.data.file_sources import _tokenizer

    tokenizer = _tokenizer(loaded)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    count = len(ids) // window
    if count < 2:
        raise StudioError(f"{path}: {len(ids)} tokens make {count} window(s) of {window}; text: data needs at least "
                          f"two (a training and a validation one): use a longer text or text:{path}?window=N.")
    windows = torch.tensor(ids[: count * window], dtype=torch.long).view(count, window)
    train, val = split_indices(count)
    return TextWindows(f"text:{path}", {"input_ids": windows, "attention_mask": torch.ones_like(windows)},
                       None, True, train, val)


def read_text(path: Path) -> str:
    """The file as UTF-8 text; empty, binary or undecodable files are one clear error."""
    if not path.is_file():
        raise StudioError(f"{path}: text: data is one plain-text file, not a folder.")
    size = path.stat().st_size
    if size == 0:
        raise StudioError(f"{path}: the text file is empty.")
    if size > MAX_BYTES:
        raise StudioError(f"{path}: {size / 2**20:.0f} MiB of text; text: data takes up to {MAX_BYTES // 2**20} MiB.")
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        raise StudioError(f"{path}: a binary file, not plain text (text: data is a UTF-8 .txt file).")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StudioError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8.") from exc
    if not text.strip():
        raise StudioError(f"{path}: the text file holds only whitespace.")
    return text


def _window(loaded: LoadedModel, query: str, path: Path) -> int:
    """The model's own sequence length (its input spec), unless `?window=N` says otherwise."""
    names = {t.name: t for t in loaded.input_spec.tensors}
    window = names["input_ids"].shape[-1] if "input_ids" in names else DEFAULT_WINDOW
    if query:
        values = parse_qs(query)
        unknown = set(values) - {"window"}
        if unknown:
            raise StudioError(f"text:{path}?{query}: unknown option {', '.join(sorted(unknown))}; only window=N.")
        text = values["window"][-1]
        if not text.isdigit() or not MIN_WINDOW <= int(text) <= 65536:
            raise StudioError(f"text:{path}?{query}: window takes a number of tokens from {MIN_WINDOW} to 65536.")
        window = int(text)
    return window
