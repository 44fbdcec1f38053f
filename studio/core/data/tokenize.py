"""Tokenizing a whole dataset in chunks: a fast tokenizer holds the GIL for one call, so one
call on 10k texts froze the window for a third of a second; chunks let it breathe."""

from __future__ import annotations

import torch

CHUNK = 256


def tokenize_texts(tokenizer, texts: list[str], max_length: int, chunk: int = CHUNK) -> dict[str, torch.Tensor]:
    """Padded to `max_length`, truncated; the same tensors as one call, built chunk by chunk."""
    parts: dict[str, list[torch.Tensor]] = {}
    for start in range(0, len(texts), chunk):
        enc = tokenizer(texts[start:start + chunk], padding="max_length", truncation=True, max_length=max_length,
                        return_tensors="pt")
        for key, value in enc.items():
            parts.setdefault(key, []).append(value)
    return {key: torch.cat(values) for key, values in parts.items()}
