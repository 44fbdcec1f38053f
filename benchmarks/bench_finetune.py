"""Fine-tuning with the default settings on a real pretrained transformer: the MiniLM sample
with 50 % structured pruning of its feed-forward layers, 1 epoch of distillation. Validation
accuracy before/after fine-tuning, wall time per epoch, the learning rate "auto" chose, and
the machine load seen during the run (helpers share the CPU).

Prints one JSON object.    python benchmarks/bench_finetune.py [--epochs 1] [--threads N] [--max-steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RECIPE = {"rules": [{"layers": "bert.encoder.layer.*.intermediate.dense",
                     "prune": {"mode": "structured", "amount": 0.5}}]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--max-steps", type=int, default=None, help="a shorter smoke run")
    parser.add_argument("--lr", default="auto")
    args = parser.parse_args()
    import torch

    from studio.core.data.sources import open_dataset
    from studio.core.events import Finished, Metric, Note, Warning
    from studio.core.finetune import FinetuneSettings
    from studio.core.loaders import LoadRequest, load_model
    from studio.core.plan import CompressionPlan
    from studio.core.run_pipeline import run

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(LoadRequest("sample:minilm-sentiment"))
    data = open_dataset("sample", loaded)
    lr = args.lr if args.lr == "auto" else float(args.lr)
    settings = FinetuneSettings(epochs=args.epochs, distill=True, lr=lr, max_steps=args.max_steps)
    loads, notes, losses, start = [], [], [], time.perf_counter()
    result = None
    for event in run(loaded, CompressionPlan.from_dict(RECIPE), data, settings):
        loads.append(os.getloadavg()[0])
        if isinstance(event, (Note, Warning)):
            notes.append(event.message)
            print(event.message, file=sys.stderr, flush=True)
        elif isinstance(event, Metric) and event.name == "train/loss":
            losses.append(event.value)
        elif isinstance(event, Metric) and event.name.startswith(("val/accuracy", "best/")):
            print(f"step {event.step} {event.name} {event.value:.4f}", file=sys.stderr, flush=True)
        elif isinstance(event, Finished):
            result = event.result
    report = result.report
    finetune = report["finetune"]
    print(json.dumps({
        "model": "sample:minilm-sentiment (all-MiniLM-L6-v2 + sentiment head)",
        "recipe": "prune structured 50 % of bert.encoder.layer.*.intermediate.dense",
        "data": f"{data.name}: {len(data.train_idx)} train / {len(data.val_idx)} validation snippets",
        "epochs": args.epochs, "steps": finetune["steps"], "settings": settings.to_dict(),
        "resolved": finetune["resolved"],
        "original_accuracy": round(report["before"]["accuracy"], 4),
        "pruned_accuracy_before_finetune": round(finetune["start"]["accuracy"], 4),
        "accuracy_after_finetune": round(report["after"]["accuracy"], 4),
        "agreement_before_after": [round(finetune["start"].get("agreement", 0), 4),
                                   round(finetune["best"].get("agreement", 0), 4)],
        "best_step": finetune["best_step"], "kept": finetune["kept"], "stopped": finetune["stopped"],
        "backoffs": finetune["backoffs"],
        "train_loss_first_last_max": [round(losses[0], 4), round(losses[-1], 4), round(max(losses), 4)] if losses else None,
        "finetune_seconds": finetune["seconds"], "seconds_per_epoch": finetune["seconds_per_epoch"],
        "run_seconds": round(time.perf_counter() - start, 1),
        "val_tokens_padded_to_batch_vs_fixed_128": [data.tokens("val", 64), data.tokens("val", 64, "fixed")],
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_average_1min_min_mean_max": [round(min(loads), 2), round(sum(loads) / len(loads), 2), round(max(loads), 2)],
        "notes": notes,
    }, indent=1))


if __name__ == "__main__":
    main()
