"""Honest before/after latency: the two models are timed interleaved (so machine noise hits
both alike) and the speed-up gets a bootstrap interval; a difference inside that interval, or
under 5 %, is "the same speed", never a speed-up."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

SAME_WITHIN = 0.05  # a speed-up under 5 % is never claimed, however tight the interval
MIN_SECONDS = 0.25  # short forwards get more pairs: 21 pairs of 0.1 ms passes called one model 7 % faster than itself
MAX_RUNS = 401


@dataclass(frozen=True)
class LatencyComparison:
    before_ms: float       # median batch-1 forward time of the original
    after_ms: float        # ... and of the compressed model
    speedup: float         # median of the per-pair ratios before/after (> 1: faster)
    speedup_low: float     # 95 % bootstrap interval of that median
    speedup_high: float
    runs: int
    same_speed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _time(model: nn.Module, example: tuple[tuple[Any, ...], dict[str, Any]]) -> float:
    args, kwargs = example
    start = time.perf_counter()
    model(*args, **kwargs)
    return (time.perf_counter() - start) * 1000


def budgeted_runs(runs: int, ms_per_run: float) -> int:
    """At least `runs`, more (up to MAX_RUNS) while they take under MIN_SECONDS in all at
    `ms_per_run` each: the time budget of both the interleaved and the in-place timing."""
    return min(MAX_RUNS, max(runs, int(MIN_SECONDS * 1000 / max(ms_per_run, 1e-3))))


def compare_latency(before: nn.Module, after: nn.Module, example: tuple[tuple[Any, ...], dict[str, Any]],
                    runs: int = 21, warmup: int = 3, seed: int = 0) -> LatencyComparison:
    """Pairs of runs in alternating order (A B, B A, …) after warm-up of both; at least `runs`
    pairs, more (up to MAX_RUNS) while the pairs take under MIN_SECONDS in all."""
    before.eval()
    after.eval()
    t_before, t_after = [], []
    with torch.no_grad():
        pair_ms = 0.0
        for _ in range(warmup):
            pair_ms = _time(before, example) + _time(after, example)
        runs = budgeted_runs(runs, pair_ms) if warmup else runs
        for i in range(runs):
            if i % 2:
                t_after.append(_time(after, example))
                t_before.append(_time(before, example))
            else:
                t_before.append(_time(before, example))
                t_after.append(_time(after, example))
    return comparison_of(t_before, t_after, seed)


def comparison_of(t_before: list[float], t_after: list[float], seed: int = 0) -> LatencyComparison:
    """Per-pair ratios, a bootstrap interval of their median, and the 5 % rule, from paired times."""
    ratios = np.asarray(t_before) / np.maximum(np.asarray(t_after), 1e-9)
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(ratios, size=(1000, len(ratios)), replace=True), axis=1)
    low, high = (float(v) for v in np.percentile(medians, [2.5, 97.5]))
    speedup = float(np.median(ratios))
    same = low <= 1.0 <= high or abs(speedup - 1.0) < SAME_WITHIN
    return LatencyComparison(before_ms=statistics.median(t_before), after_ms=statistics.median(t_after),
                             speedup=speedup, speedup_low=low, speedup_high=high, runs=len(t_before),
                             same_speed=same)
