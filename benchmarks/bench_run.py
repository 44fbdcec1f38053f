"""Accuracy recovered by fine-tuning after an aggressive plan on the digits sample:
knowledge distillation vs plain fine-tuning (labels only) vs none, same epochs and seed.

Prints one JSON object.    python benchmarks/bench_run.py [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PLAN = {"rules": [{"layers": "*", "prune": {"mode": "unstructured", "amount": 0.9}}]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    from studio.core.data.sources import open_dataset
    from studio.core.base.events import Finished
    from studio.core.pipelines.finetune import FinetuneSettings
    from studio.core.pipelines.opening import LoadRequest, load_model
    from studio.core.plan import CompressionPlan
    from studio.core.pipelines.run import run

    loaded = load_model(LoadRequest("sample:digits-cnn"))
    data = open_dataset("digits", loaded)
    plan = CompressionPlan.from_dict(PLAN)
    results = {}
    for label, settings in (("none", FinetuneSettings(epochs=0)),
                            ("plain", FinetuneSettings(epochs=args.epochs, distill=False)),
                            ("distill", FinetuneSettings(epochs=args.epochs, distill=True))):
        start = time.perf_counter()
        report = [e for e in run(loaded, plan, data, settings) if isinstance(e, Finished)][0].result.report.to_dict()
        results[label] = {"accuracy": round(report["after"]["accuracy"], 4), "seconds": round(time.perf_counter() - start, 2)}
    original = report["before"]["accuracy"]
    print(json.dumps({
        "plan": "unstructured 90% on every Conv2d/Linear", "epochs": args.epochs, "original_accuracy": round(original, 4),
        **results,
        "recovered_by_distill_pts": round(100 * (results["distill"]["accuracy"] - results["none"]["accuracy"]), 2),
        "recovered_by_plain_pts": round(100 * (results["plain"]["accuracy"] - results["none"]["accuracy"]), 2),
        "distill_minus_plain_pts": round(100 * (results["distill"]["accuracy"] - results["plain"]["accuracy"]), 2),
    }, indent=1))


if __name__ == "__main__":
    main()
