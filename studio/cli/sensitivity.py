"""`studio sensitivity MODEL --data SPEC --out FILE.json` and `studio plan MODEL --sensitivity FILE.json
--target-… --out RECIPE.yaml [--verify]`: the sweep and the target-driven plan on the command line."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

from studio.core.base.errors import StudioError
from studio.core.data.specs import DATA_SPECS

COMMANDS = ("sensitivity", "plan")


def add_parsers(sub, add_model_options: Callable[[argparse.ArgumentParser], None]) -> None:
    sens = sub.add_parser("sensitivity", help="layer-by-layer sensitivity sweep (pruning, rank, precision)")
    sens.add_argument("model", help="the model (any source `inspect` accepts)")
    add_model_options(sens)
    sens.add_argument("--data", metavar="SPEC", help=f"{DATA_SPECS} (default: the sample's own data, else random inputs)")
    sens.add_argument("--technique", default="", help="comma list of techniques to sweep, e.g. prune,lowrank,quant "
                      "(default: every technique that has sweep settings)")
    sens.add_argument("--layers", metavar="GLOB", help="layer pattern like recipe rules (glob or re:REGEX)")
    sens.add_argument("--settings", action="append", metavar="TECH=V,V",
                      help="e.g. prune=0.3,0.5,struct30%% lowrank=0.25,energy90%% quant=int8,int4 (repeatable)")
    sens.add_argument("--samples", type=int, default=200, help="validation samples per cell (default 200)")
    where = sens.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=0, metavar="N", help="local worker processes (0: in-process)")
    where.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                       help="run on Ray: a local Ray without ADDRESS, else join the cluster at ADDRESS")
    sens.add_argument("--ray-workers", type=int, default=2, metavar="N", help="Ray actors (default 2)")
    sens.add_argument("--no-inverse", action="store_true", help="skip the 'all int8 but this layer' view")
    sens.add_argument("--no-cache", action="store_true", help="measure every cell again")
    sens.add_argument("--out", required=True, help="result file (.json)")
    sens.add_argument("--json", action="store_true", help="print the result JSON instead of the table")

    plan = sub.add_parser("plan", help="fit a recipe to a target from a sensitivity result")
    plan.add_argument("model", help="the model the sensitivity result was measured on")
    add_model_options(plan)
    plan.add_argument("--sensitivity", required=True, metavar="FILE", help="result of `studio sensitivity`")
    target = plan.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-size", metavar="SIZE", help="model size, e.g. 2MB")
    target.add_argument("--target-params", type=float, metavar="F", help="fraction of nonzero parameters to keep")
    target.add_argument("--target-flops", type=float, metavar="F", help="fraction of FLOPs to keep")
    target.add_argument("--max-drop", type=float, metavar="D", help="largest metric drop (fraction, e.g. 0.01)")
    plan.add_argument("--out", required=True, help="recipe file (.yaml/.json)")
    plan.add_argument("--verify", action="store_true", help="apply the recipe and measure the drop and size")
    plan.add_argument("--data", metavar="SPEC", help="data for --verify (default: the sample's own data)")
    plan.add_argument("--json", action="store_true", help="print the summary as JSON")


def run_command(args: argparse.Namespace) -> int:
    return _sensitivity(args) if args.command == "sensitivity" else _plan(args)


def _settings(values: list[str] | None) -> dict[str, tuple[str, ...]] | None:
    if not values:
        return None
    from studio.core.pipelines.sensitivity.settings import technique_key

    out: dict[str, tuple[str, ...]] = {}
    for value in values:
        for part in value.split(";"):
            key, sep, items = part.partition("=")
            if not sep or not items.strip():
                raise StudioError(f"--settings {part!r} is not TECHNIQUE=V,V (e.g. prune=0.3,0.5).")
            out[technique_key(key)] = out.get(technique_key(key), ()) + tuple(
                i.strip() for i in items.split(",") if i.strip())
    return out


def _data(spec: str | None, loaded):
    from studio.core.data.sources import open_dataset

    spec = spec or ("sample" if loaded.extras.get("data") else "random")
    return open_dataset(spec, loaded)


def _sensitivity(args: argparse.Namespace) -> int:
    from studio.cli.requests import request_from_args
    from studio.core.base.atomic import write_text_atomic
    from studio.core.base.cancel import CancelToken
    from studio.core.base.events import Finished, RunCancelled, StageStarted
    from studio.core.pipelines.opening import load_model
    from studio.core.pipelines.sensitivity import CellDone, SweepSpec, sweep
    from studio.core.pipelines.sensitivity.cache import default_cache_dir
    from studio.core.pipelines.sensitivity.report import drop_table
    from studio.cli.terminal import cancel_on_sigint

    out = Path(args.out)
    if out.suffix.lower() != ".json":
        raise StudioError(f"--out {out} must be a .json file.")
    if args.workers < 0 or args.samples < 1 or args.ray_workers < 1:
        raise StudioError("--workers must be >= 0, --samples and --ray-workers >= 1.")
    spec = SweepSpec(techniques=tuple(t for t in args.technique.split(",") if t.strip()), layers=args.layers,
                     settings=_settings(args.settings), samples=args.samples,
                     workers=args.ray_workers if args.ray else args.workers, ray=args.ray,
                     inverse=not args.no_inverse)
    from studio.core.pipelines.sensitivity.settings import sweep_settings

    sweep_settings(spec.techniques, spec.settings)  # bad settings fail before the (slow) load
    loaded = load_model(request_from_args(args))
    dataset = _data(args.data, loaded)
    cancel = CancelToken()
    result, start, tty = None, time.perf_counter(), sys.stderr.isatty()
    with cancel_on_sigint(cancel):
        for event in sweep(loaded, dataset, spec, cancel, None if args.no_cache else default_cache_dir()):
            if isinstance(event, StageStarted):
                print(f"[{event.name}] {event.detail}", file=sys.stderr)
            elif isinstance(event, CellDone):
                elapsed = time.perf_counter() - start
                eta = elapsed / event.done * (event.total - event.done)
                bar = "█" * int(30 * event.done / max(event.total, 1))
                text = f"  {bar:<30} {event.done}/{event.total}  {event.cell.layer} · {event.cell.setting}  ETA {eta:.0f}s"
                print(("\r\033[K" + text) if tty else text, file=sys.stderr, end="" if tty else "\n", flush=True)
            elif isinstance(event, RunCancelled):
                print(f"\nstudio: {event.detail}", file=sys.stderr)
                return 130
            elif isinstance(event, Finished):
                result = event.result
    if tty:
        print(file=sys.stderr)
    assert result is not None
    write_text_atomic(out, json.dumps(result.to_dict(), indent=1) + "\n")
    print(json.dumps(result.to_dict(), indent=1) if args.json else drop_table(result) + f"\n\nSaved to {out}")
    return 0


def _plan(args: argparse.Namespace) -> int:
    from studio.cli.requests import request_from_args
    from studio.core.pipelines.opening import load_model
    from studio.core.pipelines.sensitivity import SensitivityResult, Target, fit_to_target
    from studio.core.pipelines.sensitivity.report import fitted_summary, parse_size, summary_text, verify

    path = Path(args.sensitivity)
    try:
        result = SensitivityResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise StudioError(f"{path}: cannot read the sensitivity result ({exc.strerror or exc}).") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise StudioError(f"{path}: not a sensitivity result written by `studio sensitivity`.") from exc
    if args.target_size is not None:
        target = Target("size", parse_size(args.target_size))
    elif args.target_params is not None:
        target = Target("params", args.target_params)
    elif args.target_flops is not None:
        target = Target("flops", args.target_flops)
    else:
        target = Target("max_drop", args.max_drop)
    if Path(args.out).suffix.lower() not in (".yaml", ".yml", ".json"):
        raise StudioError(f"--out {args.out} must be a .yaml, .yml or .json recipe file.")
    loaded = load_model(request_from_args(args))
    fitted = fit_to_target(result, loaded, target)
    from studio.core.model.inspection import inspect_model

    tree = inspect_model(loaded.module, loaded.input_spec)
    before = {"bytes": tree.total_bytes, "params": tree.total_params, "flops": tree.total_flops}
    summary = fitted_summary(fitted, before)
    if not fitted.met:
        raise StudioError(f"The {target.kind} target {args.target_size or target.value} cannot be met with the swept "
                          f"settings (best reachable: {summary_text(summary).splitlines()[1].strip()}).")
    fitted.plan.save(args.out)
    if args.verify:
        summary.update(verify(loaded, _data(args.data, loaded), fitted, result.samples))
    print(json.dumps(summary, indent=1) if args.json else summary_text(summary) + f"\n\nRecipe saved to {args.out}")
    return 0
