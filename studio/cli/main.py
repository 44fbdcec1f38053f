"""Headless entry point: `studio inspect MODEL`, `studio gui [MODEL]`, `studio samples`.

Exit codes: 0 done; 2 a problem with the user's input (one line, `studio: error: ...`);
130 cancelled by Ctrl-C (one line, nothing left behind); 1 a bug (one line asking for a
report; `--debug` shows the traceback). Everything cheap is checked before any work.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from studio.cli.requests import request_from_args
from studio.core.base.errors import StudioError
from studio.core.data.specs import DATA_SPECS

EXIT_USER_ERROR = 2


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", metavar="W", help="weights for a file.py:name factory (.safetensors or state_dict .pt)")
    parser.add_argument("--trust", action="store_true", help="allow pickled full models (unpickling can run code)")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow a Hugging Face folder's own code")
    parser.add_argument("--input-shape", metavar="SHAPE", help="single input shape, e.g. 1,3,224,224")
    parser.add_argument("--input-dtype", metavar="DTYPE", help="dtype of the inputs, e.g. int64")
    parser.add_argument("--input", dest="input_spec", metavar="SPEC",
                        help="full input spec, e.g. 'input_ids 1x128 int64; attention_mask 1x128 int64'")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio", description="Compression Studio: inspect, compress and export models.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command")
    inspect = sub.add_parser("inspect", help="print a model's layer tree with params, bytes and FLOPs")
    inspect.add_argument("model", help="sample:NAME, a model folder, a .pt/.pth file, or file.py:factory")
    _add_model_options(inspect)
    inspect.add_argument("--json", action="store_true", help="print the stable JSON schema instead of a table")
    inspect.add_argument("--depth", type=int, default=None, help="table: show layers down to this depth")
    inspect.add_argument("--meta", action="store_true", help="build a Hugging Face model from its config.json on the "
                         "meta device: no weights read, a 7B model in seconds (a config-only folder opens so anyway)")
    compress = sub.add_parser("compress", help="apply a recipe, measure before/after, write a model folder")
    compress.add_argument("model", help="the model to compress (any source `inspect` accepts)")
    _add_model_options(compress)
    compress.add_argument("--recipe", required=True, help="recipe file (.yaml/.yml/.json)")
    compress.add_argument("--out", required=True, help="output folder (weights, recipe, report.json)")
    compress.add_argument("--force", action="store_true", help="replace an existing output folder")
    compress.add_argument("--json", action="store_true", help="print report.json instead of a summary")
    compress.add_argument("--data", metavar="SPEC", help=f"data: {DATA_SPECS} (default: the recipe's settings.data)")
    compress.add_argument("--finetune-epochs", type=int, metavar="N", help="fine-tune the compressed model for N epochs")
    compress.add_argument("--distill", action=argparse.BooleanOptionalAction, default=None,
                          help="fine-tune by knowledge distillation from the original (default: on)")
    export = sub.add_parser("export", help="export to ONNX or TFLite and verify it in the runtime")
    export.add_argument("model", help="a model or a compressed-model folder")
    _add_model_options(export)
    export.add_argument("--format", required=True, choices=["onnx", "tflite"])
    export.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "int8"])
    export.add_argument("--int8-mode", default="auto", choices=["auto", "dynamic", "static"],
                        help="auto: measure dynamic/static candidates (with and without the most fragile "
                             "layers in float) and keep the fastest that holds 99.5 %% of fp32 accuracy")
    export.add_argument("--calibration", default="minmax", choices=["minmax", "percentile", "entropy"],
                        help="static int8 calibration method (ONNX Runtime offers all three; TFLite: min-max)")
    export.add_argument("--keep-float", action="append", default=[], metavar="LAYER",
                        help="leave this layer (name or glob) in float in an int8 file; repeatable")
    export.add_argument("--samples", type=int, help="verification inputs (default: the whole validation split, "
                        "at most 1000)")
    export.add_argument("--calibration-samples", type=int, default=200, help="training inputs for static int8")
    export.add_argument("--sensitivity", metavar="FILE", help="a `studio sensitivity` result of this model: int8 auto "
                        "also tries its most quantization-sensitive layers in float (default: first + last layer)")
    export.add_argument("--data", metavar="SPEC", help="calibration/verification data (default: the sample's own, "
                                                       "else inputs from the input spec)")
    export.add_argument("--out", required=True, help="output file (.onnx / .tflite); the report goes beside it")
    export.add_argument("--force", action="store_true", help="replace an existing file")
    export.add_argument("--json", action="store_true", help="print the report as JSON")
    gui = sub.add_parser("gui", help="open the window (optionally on MODEL)")
    gui.add_argument("model", nargs="?")
    _add_model_options(gui)
    gui.add_argument("--screenshot", metavar="PNG", help="save a PNG of the window once the model is shown, then exit")
    sub.add_parser("samples", help="list the bundled sample models")
    from studio.cli.sensitivity import add_parsers as add_sensitivity_parsers

    add_sensitivity_parsers(sub, _add_model_options)
    from studio.cli.find_lr import add_parser as add_find_lr_parser

    add_find_lr_parser(sub, _add_model_options)
    return parser


def _inspect(args: argparse.Namespace) -> int:
    from studio.core.base.events import Finished, StageStarted
    from studio.core.pipelines.opening import open_model
    from studio.cli.terminal import user_stdout_to_stderr

    opened = None
    with user_stdout_to_stderr(args.json):  # the model's own prints never reach --json stdout
        request = request_from_args(args)
        if args.meta:
            from dataclasses import replace

            request = replace(request, meta=True)
        for event in open_model(request):
            if isinstance(event, StageStarted) and not args.json and sys.stderr.isatty():
                print(f"{event.name}: {event.detail}", file=sys.stderr)
            elif isinstance(event, Finished):
                opened = event.result
    assert opened is not None
    if args.json:
        payload = {"model": opened.loaded.name, "source": opened.loaded.source, "kind": opened.loaded.kind,
                   **opened.tree.to_dict()}
        print(json.dumps(payload, indent=1))
    else:
        from studio.cli.tables import layer_table  # the report rows it needs cost time --json does not spend

        print(layer_table(opened.loaded, opened.tree, max_depth=args.depth))
    return 0


def _compress(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from studio.core.base.cancel import CancelToken
    from studio.core.pipelines.compressed_dir import save_compressed
    from studio.core.data.sources import open_dataset
    from studio.core.pipelines.finetune import FinetuneSettings
    from studio.core.pipelines.opening import load_model
    from studio.core.model.loaders import require_weights
    from studio.core.plan import CompressionPlan
    from studio.cli.tables import compression_summary
    from studio.core.pipelines.run import run
    from studio.core.base.out_paths import check_free_space, check_output
    from studio.cli.terminal import TerminalProgress, cancel_on_sigint, user_stdout_to_stderr

    plan = CompressionPlan.load(args.recipe)  # recipe problems surface before the model loads
    settings = FinetuneSettings.from_dict(plan.settings.get("finetune"))
    if args.finetune_epochs is not None:
        settings = replace(settings, epochs=args.finetune_epochs)
    if args.distill is not None:
        settings = replace(settings, distill=args.distill)
    out = check_output(args.out, folder=True, force=args.force)  # before any work, not after the run
    with user_stdout_to_stderr(args.json):
        loaded = load_model(request_from_args(args))
        require_weights(loaded, "compressed")
        check_free_space(out, _model_bytes(loaded.module))
        data_spec = args.data or plan.settings.get("data")
        dataset = open_dataset(data_spec, loaded) if data_spec else None
        cancel = CancelToken()
        progress = TerminalProgress(quiet=args.json)
        with cancel_on_sigint(cancel):
            result = progress.consume(run(loaded, plan, dataset, settings, cancel, owned=True))  # exits after saving
        if result is None:
            return 130
        if cancel.cancelled:  # Ctrl-C in a stage that finished without checking (latency)
            print("studio: cancelled; nothing was written", file=sys.stderr)
            return 130
        out = save_compressed(result, out, force=args.force)
        _drop_replaced_file(out)
    if args.json:
        print(json.dumps(result.report.to_dict(), indent=1))
    else:
        print(compression_summary(result.report))
        print(f"\nSaved to {out} (inspect it: studio inspect {out})")
    return 0


def _model_bytes(module) -> int:
    return sum(t.numel() * t.element_size() for t in (*module.parameters(), *module.buffers()))


def _drop_replaced_file(out) -> None:
    """`--force` over a regular file: the compressed folder replaced it; drop the moved-aside file."""
    aside = out.parent / f".{out.name}.old-{os.getpid()}"
    if aside.is_file() or aside.is_symlink():
        aside.unlink()


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from studio.core.base.cancel import CancelToken, Cancelled
    from studio.core.data.sources import open_dataset
    from studio.core.pipelines.export import ExportRequest, export
    from studio.core.pipelines.opening import load_model
    from studio.core.pipelines.export import report_path_for
    from studio.core.model.loaders import require_weights
    from studio.cli.tables import export_summary
    from studio.core.base.out_paths import check_free_space, check_output
    from studio.cli.terminal import TerminalProgress, cancel_on_sigint, user_stdout_to_stderr

    request = ExportRequest(args.format, Path(args.out), args.precision, args.force, args.int8_mode,
                            samples=args.samples, calibration=args.calibration,
                            calibration_samples=args.calibration_samples, keep_float=tuple(args.keep_float),
                            sensitivity=Path(args.sensitivity) if args.sensitivity else None)
    if request.problems():
        raise StudioError("Cannot export: " + "; ".join(request.problems()) + ".")
    check_output(request.out, folder=False, force=request.force)  # before the (slow) load
    check_output(report_path_for(request.out), folder=False, force=request.force)
    with user_stdout_to_stderr(args.json):
        loaded = load_model(request_from_args(args))
        require_weights(loaded, "exported")
        check_free_space(request.out, _model_bytes(loaded.module))
        data_spec = args.data or ("sample" if loaded.extras.get("data") else None)
        dataset = open_dataset(data_spec, loaded) if data_spec else None
        cancel = CancelToken()
        report = report_path_for(request.out)
        before = {path: path.exists() for path in (request.out, report)}
        try:
            with cancel_on_sigint(cancel, immediate=True):
                result = TerminalProgress(quiet=args.json).consume(export(loaded, request, dataset, cancel=cancel))
        except (KeyboardInterrupt, Cancelled):
            for path, existed in before.items():  # interrupted between the file and its report
                if not existed:
                    path.unlink(missing_ok=True)
            raise
    if result is None:
        print("studio: cancelled; nothing was written", file=sys.stderr)
        return 130
    print(json.dumps(result.report.to_dict(), indent=1) if args.json else export_summary(result.report))
    return 0


def _samples() -> int:
    from studio.core.model.loaders.samples import SAMPLES

    for sample in SAMPLES.values():
        print(f"sample:{sample.name:<18} {sample.description}  [{sample.input_spec}]")
    return 0


def _gui(args: argparse.Namespace) -> int:
    try:
        from studio.gui.qt_app import run_gui
    except ImportError as exc:
        raise StudioError(f"The window needs PySide6 and pyqtgraph ({exc}); install with pip install -e .") from exc
    model = getattr(args, "model", None)
    request = request_from_args(args) if model else None
    return run_gui(request, screenshot=getattr(args, "screenshot", None))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        print("studio: cancelled", file=sys.stderr)
        return 130
    try:
        from studio.core.base.logs import quiet_third_party_logs

        quiet_third_party_logs()
        if args.command == "inspect":
            return _inspect(args)
        if args.command == "compress":
            return _compress(args)
        if args.command == "export":
            return _export(args)
        if args.command == "samples":
            return _samples()
        if args.command in ("sensitivity", "plan"):
            from studio.cli.sensitivity import run_command

            return run_command(args)
        if args.command == "find-lr":
            from studio.cli.find_lr import run_command as find_lr_command

            return find_lr_command(args)
        return _gui(args)
    except BaseException as exc:  # the one error boundary: every outcome is an exit code and one line
        return report_exit(exc, debug=args.debug)


EXIT_BUG = 1
EXIT_CANCELLED = 130
MAX_MESSAGE = 2000


def one_line(exc: BaseException) -> str:
    """A message on one line, cut: plan problems joined, long echoed values never whole."""
    from studio.core.plan import PlanError

    text = exc.one_line() if isinstance(exc, PlanError) else str(exc)
    text = " ".join(line.strip() for line in text.splitlines() if line.strip())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "… (cut)"


def _out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text.lower())


def report_exit(exc: BaseException, debug: bool = False) -> int:
    from studio.core.base.cancel import Cancelled

    if isinstance(exc, (KeyboardInterrupt, Cancelled)):
        print("studio: cancelled; nothing was written", file=sys.stderr)
        return EXIT_CANCELLED
    if isinstance(exc, GeneratorExit):
        raise exc
    if debug:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, StudioError):
        print(f"studio: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_USER_ERROR
    if isinstance(exc, SystemExit):  # argparse exits before the boundary: this is the model's own code
        print(f"studio: error: the model's code called sys.exit({exc.code!r}); the studio stopped there.",
              file=sys.stderr)
        return EXIT_USER_ERROR
    if isinstance(exc, OSError) and exc.errno is not None:  # the file system said no: not a bug
        name = f": {str(exc.filename)[:120]}" if exc.filename else ""
        print(f"studio: error: {exc.strerror or exc}{name}", file=sys.stderr)
        return EXIT_USER_ERROR
    if _out_of_memory(exc):
        print(f"studio: error: out of memory ({one_line(exc)[:200]}); try a smaller input shape, batch or "
              "model.", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"studio: internal error: {type(exc).__name__}: {one_line(exc)[:300]} — this is a bug; please report "
          "it with the output of the same command and --debug.", file=sys.stderr)
    return EXIT_BUG
