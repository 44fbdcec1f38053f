"""Example batches for fidelity checks and calibration: the sample's own data when it has
some, else deterministic inputs built from the input spec."""

from __future__ import annotations

from typing import Any

from studio.core.model.loaded_model import LoadedModel

Batch = tuple[tuple[Any, ...], dict[str, Any]]


def example_batches(loaded: LoadedModel, count: int = 4, batch_size: int = 32, split: str = "test") -> list[Batch]:
    data = loaded.extras.get("data")
    if data == "digits":
        from studio.core.data.digits import digits_split

        parts = digits_split()
        x = parts.x_test if split == "test" else parts.x_train
        return [((x[i:i + batch_size],), {}) for i in range(0, min(len(x), count * batch_size), batch_size)]
    if data == "rotten-tomatoes":
        from studio.core.data.rotten_tomatoes import snippets_split
        from studio.core.model.samples.minilm_sentiment import SEQ_LEN, load_tokenizer

        rows = getattr(snippets_split(), split)[: count * batch_size]
        tokenizer = load_tokenizer()
        batches = []
        for i in range(0, len(rows), batch_size):
            enc = tokenizer([t for t, _ in rows[i:i + batch_size]], padding="max_length", truncation=True,
                            max_length=SEQ_LEN, return_tensors="pt")
            batches.append(((), {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}))
        return batches
    offset = 0 if split == "test" else 1000
    return [loaded.input_spec.make_inputs(seed=offset + i) for i in range(count)]
