"""Rotten Tomatoes review snippets (Pang & Lee, 2005) shipped in resources/data with attribution."""

from __future__ import annotations

import bz2
import csv
import random
from dataclasses import dataclass

from studio.core.base.resources import resource

DATA_FILE = resource("data", "rotten_tomatoes_snippets.csv.bz2")
SPLIT_SEED = 0
TEST_FRACTION = 0.2
LABELS = ("rotten", "fresh")


@dataclass(frozen=True)
class TextSplit:
    train: list[tuple[str, int]]
    test: list[tuple[str, int]]


def load_snippets() -> list[tuple[str, int]]:
    with bz2.open(DATA_FILE, "rt", encoding="utf-8", newline="") as handle:
        return [(row["text"], int(row["label"])) for row in csv.DictReader(handle)]


def snippets_split() -> TextSplit:
    """A fixed shuffled 80/20 split, the same on every machine."""
    rows = load_snippets()
    random.Random(SPLIT_SEED).shuffle(rows)
    cut = int(len(rows) * (1 - TEST_FRACTION))
    return TextSplit(rows[:cut], rows[cut:])
