"""Fine-tuning with the default settings on real pretrained models, after structured pruning:

- MiniLM sample (all-MiniLM-L6-v2 + sentiment head): 50 % structured pruning of the feed-forward
  layers, 1 epoch of distillation on the Rotten Tomatoes snippets (targets: after ≥ the unpruned
  original's 76.2 %, never below its start, ≤ 5 min per epoch on the 2-core dev CPU);
- EfficientNet-Lite0 with its ImageNet weights (the export benchmark's model: a linear head fitted
  on frozen features of the upscaled digits), benchmarks/recipes/lite0-prune.yaml: 30 % structured
  pruning of every block's expand conv, the output layer re-fitted, 1 epoch (target: the
  original's 94.4 %; `--lite0-recipe ''` runs the built-in plan with the command-line settings).

For each: validation accuracy of the original, of the pruned model before and after fine-tuning,
wall time per epoch, what "auto" chose, and the machine load seen during the run (helpers share
the CPU). Prints one JSON object.

    python benchmarks/bench_finetune.py [--model minilm|lite0|both] [--epochs N] [--threads N] [--max-steps N]
        [--lr X] [--head-lr X] [--recalibrate-bn yes|no] [--batchnorm auto|train|frozen] [--lite0-recipe PATH]
        [--attention-dropout auto|X] [--eval-interval auto|N]

`finetune_cpu_seconds` is the process CPU time of the fine-tuning stage (steps and its evaluations):
comparable across runs on a loaded machine where wall time is not (torch's threads spin while
waiting for a core, so CPU time still grows somewhat with the load).
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
LITE0_FILE = Path(__file__).resolve().parent / "recipes" / "lite0-prune.yaml"  # needs the bench extra: not a sample recipe
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


def lite0_recipe(args):
    """The recipe file's rules and fine-tuning settings (`--lite0-recipe`), or the built-in 30 % plan."""
    if not args.lite0_recipe:
        return lite0()
    import yaml

    loaded, data, _, _ = lite0()
    recipe = yaml.safe_load(Path(args.lite0_recipe).read_text())
    return loaded, data, recipe, f"{args.lite0_recipe}: {json.dumps(recipe['rules'])}"


def measure(name: str, build, args) -> dict:
    import torch

    from studio.core.base.events import Finished, Metric, Note, StageStarted, Warning
    from studio.core.pipelines.finetune import FinetuneSettings
    from studio.core.plan import CompressionPlan
    from studio.core.pipelines.run import run

    loaded, data, recipe, what = build()
    given = {"epochs": args.epochs, "max_steps": args.max_steps, "lr": args.lr, "head_lr": args.head_lr,
             "batchnorm": args.batchnorm, "attention_dropout": args.attention_dropout,
             "eval_interval": args.eval_interval,
             "recalibrate_bn": None if args.recalibrate_bn is None else args.recalibrate_bn == "yes"}
    given = {k: (float(v) if k in ("lr", "head_lr", "attention_dropout") and v != "auto" else v)
             for k, v in given.items() if v is not None}
    if given.get("eval_interval", "auto") != "auto":
        given["eval_interval"] = int(given["eval_interval"])
    settings = FinetuneSettings.from_dict({"epochs": 1, "distill": True,
                                           **recipe.get("settings", {}).get("finetune", {}), **given})
    loads, notes, losses, start, cpu = [], [], [], time.perf_counter(), time.process_time()
    result, stage_cpu = None, {}
    for event in run(loaded, CompressionPlan.from_dict(recipe), data, settings):
        loads.append(os.getloadavg()[0])
        if isinstance(event, StageStarted):
            stage_cpu.setdefault(event.name, time.process_time())
            if event.name != "finetune" and "finetune" in stage_cpu and "finetune_end" not in stage_cpu:
                stage_cpu["finetune_end"] = time.process_time()
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
        "epochs": settings.epochs, "steps": finetune["steps"], "resolved": finetune["resolved"],
        "original_accuracy": round(report["before"]["accuracy"], 4),
        "pruned_accuracy_before_finetune": round(finetune["start"]["accuracy"], 4),
        "accuracy_after_finetune": round(report["after"]["accuracy"], 4),
        "agreement_before_after": [round(finetune["start"].get("agreement", 0), 4),
                                   round(finetune["best"].get("agreement", 0), 4)],
        "best_step": finetune["best_step"], "kept": finetune["kept"], "stopped": finetune["stopped"],
        "backoffs": finetune["backoffs"],
        "train_loss_first_last_max": [round(losses[0], 4), round(losses[-1], 4), round(max(losses), 4)] if losses else None,
        "finetune_seconds": finetune["seconds"], "seconds_per_epoch": finetune["seconds_per_epoch"],
        "finetune_cpu_seconds": round(stage_cpu["finetune_end"] - stage_cpu["finetune"], 1)
        if "finetune_end" in stage_cpu else None,
        "run_seconds": round(time.perf_counter() - start, 1), "run_cpu_seconds": round(time.process_time() - cpu, 1),
        "val_tokens_padded_to_batch_vs_fixed": [data.tokens("val", 64), data.tokens("val", 64, "fixed")],
        "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_average_1min_min_mean_max": [round(min(loads), 2), round(sum(loads) / len(loads), 2), round(max(loads), 2)],
        "bn_recalibration": report["settings"].get("bn_recalibration"),
        "head_refit": report["settings"].get("head_refit"),
        "notes": notes,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="both", choices=["minilm", "lite0", "both"])
    parser.add_argument("--epochs", type=int, default=None, help="default: the recipe's, else 1")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--max-steps", type=int, default=None, help="a shorter smoke run")
    parser.add_argument("--lr", default=None, help="default: the recipe's, else auto")
    parser.add_argument("--head-lr", default=None, help="the output layer's lr as a multiple of lr")
    parser.add_argument("--recalibrate-bn", default=None, choices=["yes", "no"])
    parser.add_argument("--batchnorm", default=None, choices=["auto", "train", "frozen"])
    parser.add_argument("--attention-dropout", default=None, help="auto, or the rate while fine-tuning")
    parser.add_argument("--eval-interval", default=None, help="auto, or steps between evaluations")
    parser.add_argument("--lite0-recipe", default=str(LITE0_FILE), help="'' for the built-in 1-epoch 30 % plan")
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    out = {}
    if args.model in ("minilm", "both"):
        out["minilm"] = measure("minilm", minilm, args)
    if args.model in ("lite0", "both"):
        out["efficientnet_lite0"] = measure("lite0", lambda: lite0_recipe(args), args)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
