"""Sensitivity sweep, one JSON object: on the same cells and the same batches,

- naive: the loop the issue timed — per cell a one-rule plan → editable copy → apply →
  evaluate original and changed model (as a one-change run does);
- naive_lean: the same with the original's outputs computed once (one forward per cell);
- fast: the sweep's path — layer swapped in place, inference mode, upstream outputs replayed.

    python benchmarks/bench_sensitivity.py [--naive-cells N] [--fast-layers N] [--models minilm,digits]

Each phase runs in its own process (peak RSS is its own). Wall and CPU seconds are both given:
on a shared machine CPU time is the steadier measure. `--naive-cells` runs the naive loops on
an evenly spread subset of the cells (default 12; 0 = all); `--fast-layers` sweeps an evenly
spread subset of the layers (default 0 = all; the fast path's cost depends on a layer's depth,
so the subset spans the network), and the naive cells are drawn from those same layers.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import time

CASES = {
    "minilm": {"sample": "minilm-sentiment", "layers": "re:bert\\.encoder\\..*", "samples": 200},
    "digits": {"sample": "digits-cnn", "layers": None, "samples": 200},
}
RATIOS = ("0.3", "0.5", "0.7")


def _spread(items: list, count: int) -> list:
    if not 0 < count < len(items):
        return list(items)
    return [items[round(i * (len(items) - 1) / max(count - 1, 1))] for i in range(count)]


def _setup(case: dict, fast_layers: int = 0):
    from studio.core.data.sources import open_dataset
    from studio.core.model.loaders.samples import load_sample
    from studio.core.pipelines.sensitivity.engine import sample_batches
    from studio.core.pipelines.sensitivity.settings import compressible_layers, sweep_settings

    loaded = load_sample(case["sample"])
    batches, labels = sample_batches(open_dataset("sample", loaded), case["samples"])
    settings = sweep_settings(("prune",), {"prune": RATIOS})
    layers = _spread(list(compressible_layers(loaded.module, settings, case["layers"])), fast_layers)
    return loaded, batches, labels, settings, layers


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    return time.perf_counter() - start[0], time.process_time() - start[1]


def _fast(case: dict, limit: int, fast_layers: int, queue) -> None:
    from studio.core.model.inspection import inspect_model
    from studio.core.pipelines.sensitivity.engine import CellEngine

    loaded, batches, labels, settings, layers = _setup(case, fast_layers)
    tree = inspect_model(loaded.module, loaded.input_spec)
    start = _clock()
    engine = CellEngine(loaded, batches, labels, tree, fast=True)  # the original's outputs: once per sweep
    values = {f"{c.layer}|{c.setting}": c.value for name in layers for c in engine.layer_cells(name, settings)}
    wall, cpu = _since(start)
    queue.put({"wall": wall, "cpu": cpu, "values": values, "fallback_layers": len(engine.fallbacks),
               "baseline": engine.baseline, "metric": engine.scorer.metric,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def _naive(case: dict, limit: int, fast_layers: int, queue, reference_each_cell: bool) -> None:
    from studio.core.pipelines.sensitivity.engine import Scorer, forward_all
    from studio.core.pipelines.sensitivity.naive import naive_value

    loaded, batches, labels, settings, layers = _setup(case, fast_layers)
    cells = _spread([(n, s) for n in layers for s in settings], limit)
    start = _clock()
    scorer = Scorer.from_reference(forward_all(loaded.module, batches), labels)
    values = {f"{n}|{s.label}": naive_value(loaded.module, batches, scorer, n, s, loaded.example_inputs(),
                                           reference_each_cell) for n, s in cells}
    wall, cpu = _since(start)
    queue.put({"wall": wall, "cpu": cpu, "values": values,
               "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


def _naive_loop(case, limit, fast_layers, queue):
    _naive(case, limit, fast_layers, queue, True)


def _naive_lean(case, limit, fast_layers, queue):
    _naive(case, limit, fast_layers, queue, False)


def _in_process(target, *args) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def _per_cell(phase: dict) -> dict:
    n = len(phase["values"])
    return {"cells": n, "wall_s_per_cell": round(phase["wall"] / n, 4), "cpu_s_per_cell": round(phase["cpu"] / n, 4),
            "peak_rss_mb": round(phase["peak_rss_mb"], 1)}


def bench(name: str, limit: int, fast_layers: int) -> dict:
    case = CASES[name]
    phases = {"naive": _in_process(_naive_loop, case, limit, fast_layers),
              "naive_lean": _in_process(_naive_lean, case, limit, fast_layers),
              "fast": _in_process(_fast, case, 0, fast_layers)}
    fast = phases["fast"]
    out = {"model": f"sample:{case['sample']}", "samples": case["samples"], "settings": [f"prune {r}" for r in RATIOS],
           "metric": fast["metric"], "baseline": fast["baseline"], "fast_fallback_layers": fast["fallback_layers"]}
    for key, phase in phases.items():
        out[key] = _per_cell(phase)
    for key in ("naive", "naive_lean"):
        common = set(phases[key]["values"]) & set(fast["values"])
        out[key]["max_table_diff_vs_fast"] = max(abs(phases[key]["values"][k] - fast["values"][k]) for k in common)
        for clock in ("wall", "cpu"):
            out[f"speedup_{clock}_vs_{key}"] = round(out[key][f"{clock}_s_per_cell"] / out["fast"][f"{clock}_s_per_cell"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--naive-cells", type=int, default=12)
    parser.add_argument("--fast-layers", type=int, default=0)
    parser.add_argument("--models", default="minilm,digits")
    args = parser.parse_args()
    import os

    out = {"cpus": os.cpu_count(), "load_avg_1m_at_start": round(os.getloadavg()[0], 2), "target_speedup": 3.0}
    for name in args.models.split(","):
        out[name] = bench(name, args.naive_cells, args.fast_layers)
    out["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
