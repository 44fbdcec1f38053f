"""`studio find-lr MODEL --data SPEC [--recipe R]`: the learning-rate range test on the command
line (a few training steps at growing rates; prints the curve's suggestion, or JSON)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

COMMAND = "find-lr"


def add_parser(sub, add_model_options: Callable[[argparse.ArgumentParser], None]) -> None:
    find = sub.add_parser(COMMAND, help="learning-rate range test: suggest a fine-tuning learning rate")
    find.add_argument("model", help="the model (any source `inspect` accepts)")
    add_model_options(find)
    find.add_argument("--data", metavar="SPEC", help="training data (default: the recipe's settings.data, "
                                                     "else the sample's own)")
    find.add_argument("--recipe", help="compress with this recipe first (its settings.finetune give the loss)")
    find.add_argument("--steps", type=int, default=100, help="training steps (default 100)")
    find.add_argument("--start-lr", type=float, default=1e-7)
    find.add_argument("--end-lr", type=float, default=1.0)
    find.add_argument("--json", action="store_true", help="print the curve and the suggestion as JSON")


def run_command(args: argparse.Namespace) -> int:
    from studio.cli.requests import request_from_args
    from studio.core.base.cancel import CancelToken
    from studio.core.data.sources import open_dataset
    from studio.core.base.errors import StudioError
    from studio.core.pipelines.finetune import FinetuneSettings
    from studio.core.pipelines.opening import load_model
    from studio.core.pipelines.lr_finder import find_lr
    from studio.core.plan import CompressionPlan
    from studio.cli.terminal import TerminalProgress, cancel_on_sigint

    plan = CompressionPlan.load(args.recipe) if args.recipe else CompressionPlan()
    settings = FinetuneSettings.from_dict(plan.settings.get("finetune"))
    loaded = load_model(request_from_args(args))
    spec = args.data or plan.settings.get("data") or ("sample" if loaded.extras.get("data") else None)
    if not spec:
        raise StudioError("The learning-rate test trains: pass --data (e.g. digits, sample, imagefolder:PATH).")
    dataset = open_dataset(spec, loaded)
    cancel = CancelToken()
    with cancel_on_sigint(cancel):
        result = TerminalProgress(quiet=args.json).consume(
            find_lr(loaded, plan, dataset, settings, cancel, start_lr=args.start_lr, end_lr=args.end_lr,
                    steps=args.steps))
    if result is None:
        return 130
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
        return 0
    for lr, loss, smooth in list(zip(result.lrs, result.losses, result.smoothed))[:: max(1, len(result.lrs) // 12)]:
        print(f"  lr {lr:9.2e}  loss {loss:9.4f}  smoothed {smooth:9.4f}")
    if result.suggested is None:
        print(f"No suggestion: {result.reason}. auto uses {result.default_lr:g} for a {result.family}.")
    else:
        print(f"Suggested lr {result.suggested:.2g} ({result.reason}); auto uses {result.default_lr:g} for a "
              f"{result.family}. Put it in the recipe: settings: {{finetune: {{lr: {result.suggested:.2g}}}}}")
    sys.stdout.flush()
    return 0
