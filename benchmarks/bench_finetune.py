"""Fine-tuning with the default settings on real pretrained models, after structured pruning:

- MiniLM sample (all-MiniLM-L6-v2 + sentiment head): 50 % structured pruning of the feed-forward
  layers, 1 epoch of distillation on the Rotten Tomatoes snippets (targets: after ≥ the unpruned
  original's 76.2 %, never below its start, ≤ 5 min per epoch on the 2-core dev CPU);
- EfficientNet-Lite0 with its ImageNet weights (the export benchmark's model: a linear head fitted
  on frozen features of the upscaled digits), 30 % structured pruning of every block's expand conv.

For each: validation accuracy of the original, of the pruned model before and after fine-tuning,
wall time per epoch, what "auto" chose, and the machine load seen during the run (helpers share
the CPU). Prints one JSON object.

    python benchmarks/bench_finetune.py [--model minilm|lite0|both] [--epochs 1] [--threads N] [--max-steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

MINILM_RECIPE = {"rules": [{"layers": "bert.encoder.layer.*.intermediate.dense",
                            "prune": {"mode": "structured", "amount": 0.5}}]}
LITE0_RECIPE = {"rules": [{"layers": "_blocks.*._expand_conv", "prune": {"mode": "structured", "amount": 0.3}}]}


def minilm():
    from studio.core.data.sources import open_dataset
    from studio.core.pipelines.opening import LoadRequest, load_model

    loaded = load_model(LoadRequest("sample:minilm-sentiment"))
    return loaded, open_dataset("sample", loaded), MINILM_RECIPE, "prune structured 50 % of bert.encoder.layer.*.intermediate.dense"


def lite0(res: int = 64):
    import torch
    from bench_export_cnn import fit_head, images, pretrained_lite0

    from studio.core.data.digits import digits_split
    from studio.core.data.dataset import Dataset
    from studio.core.model.input_spec import InputSpec
    from studio.core.model.loaded_model import LoadedModel

    torch.manual_seed(0)
    split = digits_split()
    x_train, x_test = images(split.x_train, res), images(split.x_test, res)
    model = pretrained_lite0()
    fit_head(model, x_train, split.y_train)
    loaded = LoadedModel(model, "efficientnet-lite0+digits-head", "efficientnet-lite-pytorch", "factory",
                         InputSpec.parse(f"1x3x{res}x{res} float32"))
    n = len(x_train)
    data = Dataset(f"digits-3x{res}", {"input": torch.cat([x_train, x_test])}, torch.cat([split.y_train, split.y_test]),
                   False, torch.arange(n), torch.arange(n, n + len(x_test)))
    return loaded, data, LITE0_RECIPE, "prune structured 30 % of _blocks.*._expand_conv"


def measure(name: str, build, args) -> dict:
    import torch

    from studio.core.base.events import Finished, Metric, Note, Warning
    from studio.core.pipelines.finetune import FinetuneSettings
    from studio.core.plan import CompressionPlan
    from studio.core.pipelines.run import run

    loaded, data, recipe, what = build()
    lr = args.lr if args.lr == "auto" else float(args.lr)
    settings = FinetuneSettings(epochs=args.epochs, distill=True, lr=lr, max_steps=args.max_steps,
                                recalibrate_bn=args.recalibrate_bn == "yes", batchnorm=args.batchnorm)
    loads, notes, losses, start, cpu = [], [], [], time.perf_counter(), time.process_time()
    result = None
    for event in run(loaded, CompressionPlan.from_dict(recipe), data, settings):
        loads.append(os.getloadavg()[0])
        if isinstance(event, (Note, Warning)):
            notes.append(event.message)
            print(f"{name}: {event.message}", file=sys.stderr, flush=True)
        elif isinstance(event, Metric) and event.name == "train/loss":
            losses.append(event.value)
        elif isinstance(event, Metric) and event.name.startswith(("val/accuracy", "best/")):
            print(f"{name}: step {event.step} {event.name} {event.value:.4f}", file=sys.stderr, flush=True)
        elif isinstance(event, Finished):
            result = event.result
    report = result.report.to_dict()
    finetune = report["finetune"]
    return {
        "model": loaded.name, "recipe": what,
        "data": f"{data.name}: {len(data.train_idx)} train / {len(data.val_idx)} validation",
        "epochs": args.epochs, "steps": finetune["steps"], "resolved": finetune["resolved"],
        "original_accuracy": round(report["before"]["accuracy"], 4),
        "pruned_accuracy_before_finetune": round(finetune["start"]["accuracy"], 4),
        "accuracy_after_finetune": round(report["after"]["accuracy"], 4),
        "agreement_before_after": [round(finetune["start"].get("agreement", 0), 4),
                                   round(finetune["best"].get("agreement", 0), 4)],
        "best_step": finetune["best_step"], "kept": finetune["kept"], "stopped": finetune["stopped"],
        "backoffs": finetune["backoffs"],
        "train_loss_first_last_max": [round(losses[0], 4), round(losses[-1], 4), round(max(losses), 4)] if losses else None,
        "finetune_seconds": finetune["seconds"], "seconds_per_epoch": finetune["seconds_per_epoch"],
        "run_seconds": round(time.perf_counter() - start, 1), "run_cpu_seconds": round(time.process_time() - cpu, 1),
        "val_tokens_padded_to_batch_vs_fixed": [data.tokens("val", 64), data.tokens("val", 64, "fixed")],
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_average_1min_min_mean_max": [round(min(loads), 2), round(sum(loads) / len(loads), 2), round(max(loads), 2)],
        "bn_recalibration": report["settings"].get("bn_recalibration"),
        "notes": notes,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="both", choices=["minilm", "lite0", "both"])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--max-steps", type=int, default=None, help="a shorter smoke run")
    parser.add_argument("--lr", default="auto")
    parser.add_argument("--recalibrate-bn", default="yes", choices=["yes", "no"])
    parser.add_argument("--batchnorm", default="auto", choices=["auto", "train", "frozen"])
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = {}
    if args.model in ("minilm", "both"):
        out["minilm"] = measure("minilm", minilm, args)
    if args.model in ("lite0", "both"):
        out["efficientnet_lite0"] = measure("lite0", lite0, args)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
