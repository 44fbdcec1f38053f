"""What passing the window's already-built ModelTree into `compress` saves: the measure stage
without and with `tree=` (the original is inspected once, when it opens), side by side, several
rounds alternating. Prints one JSON object.

    python benchmarks/bench_compress_tree.py [--model sample:minilm-sentiment] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics

from studio.core.base.events import Finished
from studio.core.pipelines.compress import compress
from studio.core.pipelines.opening import LoadRequest, open_model
from studio.core.plan import CompressionPlan

PLAN = {"rules": [{"layers": "*", "quantize": {"dtype": "int8", "activations": "dynamic"}}]}


def measure_seconds(loaded, plan, tree) -> float:
    result = next(e.result for e in compress(loaded, plan, batches=[], calibration=[], tree=tree)
                  if isinstance(e, Finished))
    return result.report.timing["measure_s"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="sample:minilm-sentiment")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    opened = next(e.result for e in open_model(LoadRequest(args.model)) if isinstance(e, Finished))
    loaded = opened.loaded
    plan = CompressionPlan.from_dict(PLAN)
    without, with_tree = [], []
    for _ in range(args.rounds):
        without.append(measure_seconds(loaded, plan, None))
        with_tree.append(measure_seconds(loaded, plan, opened.tree))
    print(json.dumps({
        "model": args.model, "rounds": args.rounds, "plan": "int8 dynamic, every layer",
        "measure_s_reinspecting": round(statistics.median(without), 3),
        "measure_s_with_tree": round(statistics.median(with_tree), 3),
        "inspect_s_at_open": round(opened.inspect_seconds, 3),
        "saved_s": round(statistics.median(without) - statistics.median(with_tree), 3),
    }))


if __name__ == "__main__":
    main()
