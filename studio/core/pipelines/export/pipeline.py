"""The export pipeline: convert to an fp32 file, realize the precision (int8 `auto`: measured
candidates), verify in the runtime on held-out data, time next to the fp32 file, report."""

from __future__ import annotations

import fnmatch
import json
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
from torch import nn

from studio.core.base.cancel import CancelToken
from studio.core.base.errors import StudioError
from studio.core.base.events import Finished, StageStarted, Warning
from studio.core.pipelines.export.request import (FORMATS, RANDOM_VERIFY_SAMPLES, VERIFY_SAMPLES, ExportRequest, ExportResult,
                                report_path_for)
from studio.core.pipelines.export.runtimes import runtime_for
from studio.core.model.loaded_model import LoadedModel
from studio.core.model.loaders import require_weights
from studio.core.report.export import ExportCheck, ExportReport, FileRow
from studio.core.report.export_rows import slower_message, slower_than_uncompressed_message
from studio.core.pipelines.export.fragile import HEURISTIC_NOTE, fragile_units, load_sweep
from studio.core.pipelines.export.probe import MAX_UNITS, probe_fragile


def conv_heavy(model: nn.Module, loaded: LoadedModel) -> bool:
    """Conv FLOPs dominate (subclasses of Conv2d count as convs)."""
    from studio.core.model.inspection import flops_by_kind, inspect_model

    kinds = flops_by_kind(model, inspect_model(model, loaded.input_spec))
    return kinds.get("Conv2d", 0) + kinds.get("Conv1d", 0) > kinds.get("Linear", 0)


def _samples(loaded: LoadedModel, dataset, count: int, split: str = "val"):
    from studio.core.pipelines.export.verify import Sample
    from studio.core.pipelines.export.wrap import example_args

    samples = []
    if dataset is not None:
        for args, kwargs, labels in dataset.batches(split, 1):
            values = [kwargs[t.name] for t in loaded.input_spec.tensors] if kwargs else list(args)
            samples.append(Sample(tuple(v.numpy() for v in values), None if labels is None else int(labels[0])))
            if len(samples) >= count:
                break
    else:
        spec = loaded.input_spec
        single = type(spec)(tuple(t.__class__(t.name, (1, *t.shape[1:]), t.dtype, t.low, t.high) for t in spec.tensors),
                            spec.keyword)
        offset = 0 if split == "val" else 10_000
        samples = [Sample(tuple(v.numpy() for v in example_args(single, seed=offset + i)), None) for i in range(count)]
    return samples


def _float_pairs(model: nn.Module, marks: dict, keep: tuple[str, ...]) -> list[str]:
    """Layers that stay float in the file: those the plan left unquantized (when the plan
    quantized some) and the ones the user marked to keep float."""
    from studio.core.model.inspection import layer_kind

    names = [n for n, m in model.named_modules() if n and layer_kind(m)]
    out = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in keep)]
    if marks:
        out += [n for n in names if n not in marks and not any(n.startswith(k + ".") for k in marks)]
    return list(dict.fromkeys(out))


def export(loaded: LoadedModel, request: ExportRequest, dataset=None, baseline: nn.Module | None = None,
           cancel: CancelToken | None = None) -> Iterator[object]:
    """Convert, realize the precision, verify; `baseline` is the uncompressed model PyTorch is
    timed with (defaults to the model itself)."""
    from studio.core.pipelines.export.candidates import candidates, pick, within_budget
    from studio.core.pipelines.export.prepare import float_copy
    from studio.core.pipelines.export.verify import (compare, reference_outputs, repeated_side_by_side_ms,
                                                     side_by_side_ms, speed_check, torch_runner)
    from studio.core.pipelines.export.wrap import ExportWrapper

    cancel = cancel or CancelToken()
    require_weights(loaded, "exported")
    problems = request.problems()
    if problems:
        raise StudioError("Cannot export: " + "; ".join(problems) + ".")
    out = Path(request.out).expanduser()
    if out.suffix != FORMATS[request.format]:
        raise StudioError(f"{out}: a {request.format} file should end in {FORMATS[request.format]}.")
    for path in (out, report_path_for(out)):
        if path.exists() and not request.force:
            raise StudioError(f"{path} already exists; pass --force to replace it (window: confirm).")
    if not loaded.eager:
        raise StudioError("TorchScript models cannot be re-exported here; open the eager model (file.py:Net --weights W).")
    sweep = load_sweep(request.sensitivity, loaded.module) if request.sensitivity else None
    rule = HEURISTIC_NOTE
    yield StageStarted("prepare", f"{request.format} {request.precision}")
    model, marks = float_copy(loaded.module)
    count = request.samples or (VERIFY_SAMPLES if dataset is not None else RANDOM_VERIFY_SAMPLES)
    samples = _samples(loaded, dataset, count)
    calibration = _samples(loaded, dataset, request.calibration_samples, split="train")
    runtime = runtime_for(request.format, loaded)
    cancel.raise_if_cancelled()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    warnings: list[str] = []
    try:
        yield StageStarted("convert", f"{request.format} fp32 via {runtime.converter}")
        base = runtime.convert(model, loaded.input_spec, work)
        cancel.raise_if_cancelled()
        yield StageStarted("verify", f"fp32 file on {len(samples)} held-out inputs in {runtime.name}")
        reference = reference_outputs(torch_runner(ExportWrapper(loaded.module, loaded.input_spec).eval(), None), samples)
        # Accuracy runs on one thread: no thread pool to spin (which crawls on a busy machine); timing uses 1 and 2.
        fp32_check = compare(runtime.runner(base, 1), reference, samples)
        fp32_row = dict(fp32_check, label="fp32", file_bytes=base.stat().st_size)
        probe = samples[0].inputs
        rows, choice, final = [], None, base
        if request.precision == "fp16":
            yield StageStarted("quantize", f"fp16 ({runtime.fp16_tool})")
            final = work / f"fp16{FORMATS[request.format]}"
            runtime.fp16(base, final)
        elif request.precision == "int8":
            float_layers = _float_pairs(model, marks, request.keep_float)
            base_float = runtime.float_units(base, float_layers)
            if float_layers and not base_float:
                warnings.append("No node of the file matched the layers to keep float; every layer is int8.")
            fragile, rule = fragile_units(runtime, base, sweep, Path(request.sensitivity or "").name)
            feed = runtime.calibration_feed(calibration)
            probed: tuple = ()
            units = runtime.weight_units(base) if hasattr(runtime, "weight_units") else ()
            if request.int8_mode == "auto" and sweep is None and 2 < len(units) <= MAX_UNITS:
                units = tuple(u for u in units if u not in base_float)
                probed, probe_rule = yield from probe_fragile(runtime, base, units, feed, calibration,
                                                              request.calibration, work, cancel)
                if probed:
                    rule = (f"{probe_rule}; and, by rule, the first weight layer and the classifier (they see the "
                            "raw input and produce the logits)")
                else:
                    rule = f"{probe_rule}; by rule instead: {HEURISTIC_NOTE.replace('no per-layer', 'no measured')}"
            todo = candidates(request.int8_mode, base_float, fragile, probed)
            for index, candidate in enumerate(todo):
                cancel.raise_if_cancelled()
                yield StageStarted("quantize", f"int8 candidate {index + 1}/{len(todo)}: {candidate.label} "
                                   f"({runtime.quantizer}, calibration {runtime.calibration_label(request.calibration)}"
                                   f" on {len(calibration)} training inputs)" if candidate.mode == "static"
                                   else f"int8 candidate {index + 1}/{len(todo)}: {candidate.label} ({runtime.quantizer})")
                path = work / f"int8_{index}{FORMATS[request.format]}"
                runtime.quantize(base, path, candidate, feed, request.calibration)
                yield StageStarted("verify", f"{candidate.label} on {len(samples)} held-out inputs")
                check = compare(runtime.runner(path, 1), reference, samples)
                row = dict(check, label=candidate.label, mode=candidate.mode, float_layers=list(candidate.float_layers),
                           file_bytes=path.stat().st_size,
                           size_vs_fp32=round(path.stat().st_size / base.stat().st_size, 3), path=path)
                row["within_budget"] = within_budget(row, fp32_check, request.accuracy_budget)
                rows.append(row)
            yield StageStarted("verify", f"timing {len(rows)} candidate(s) next to the fp32 file (1 and 2 threads)")
            for threads in (1, 2):
                runners = {"fp32": runtime.runner(base, threads)}
                runners.update({str(i): runtime.runner(r["path"], threads) for i, r in enumerate(rows)})
                speed = side_by_side_ms(runners, probe, threads, runs=20)
                fp32_row.setdefault("latency", {})[f"{threads}_thread"] = speed["fp32"]
                for i, row in enumerate(rows):
                    row.setdefault("latency", {})[f"{threads}_thread"] = speed[str(i)]
                cancel.raise_if_cancelled()
            fp32_row["latency_ms"] = fp32_row["latency"]["2_thread"]["median_ms"]
            for row in rows:  # speed: geometric mean of the 1- and 2-thread ratios
                row["latency_ms"] = row["latency"]["2_thread"]["median_ms"]
                row["speed_vs_fp32"] = round(float(np.sqrt(np.prod(  # 1 thread: CPU time (see side_by_side_ms)
                    [_ratio(fp32_row["latency"][t], row["latency"][t]) for t in row["latency"]]))), 3)
            winner, reason = pick(rows, fp32_check, request.accuracy_budget)
            rows[winner]["chosen"] = True
            final, choice = rows[winner]["path"], (todo[winner], reason)
            if not rows[winner]["within_budget"]:
                warnings.append(f"No int8 setting kept accuracy within the budget on {runtime.name}; {reason}. "
                                "Consider fp32/fp16 or keeping more layers in float.")
        cancel.raise_if_cancelled()
        yield StageStarted("verify", f"{len(samples)} held-out inputs and latency in {runtime.name} next to fp32")
        agreement = compare(runtime.runner(final, 1), reference, samples) if final is not base else fp32_check
        pytorch = torch_runner(ExportWrapper(loaded.module, loaded.input_spec).eval(), None)
        uncompressed = torch_runner(ExportWrapper(baseline if baseline is not None else loaded.module,
                                                  loaded.input_spec).eval(), None)
        latency, checks = {}, {}
        for threads in (1, 2):  # 3 repeats of file vs fp32 file (PyTorch in the first): their spread is the noise
            runners = {"runtime": runtime.runner(final, threads), "runtime_fp32": runtime.runner(base, threads),
                       "pytorch": pytorch, "pytorch_uncompressed": uncompressed}
            latency[f"{threads}_thread"] = repeated_side_by_side_ms(runners, probe, threads,
                                                                    once=("pytorch", "pytorch_uncompressed"))
            checks[f"{threads}_thread"] = speed_check(latency[f"{threads}_thread"])
            cancel.raise_if_cancelled()
        best = latency["2_thread"]
        fp32_row.setdefault("latency_ms", best["runtime_fp32"]["median_ms"])
        report = ExportReport(
            format=request.format, precision=request.precision,
            int8_mode=choice[0].mode if choice else None,
            float_layers=tuple(choice[0].float_layers) if choice else None,
            quantized_layers=(tuple(sorted(marks)) if marks else None) if request.precision == "int8" else None,
            calibration=({"method": request.calibration, "samples": len(calibration),
                          "split": "train" if dataset is not None else "inputs from the input spec",
                          "runtime_method": runtime.calibration_label(request.calibration),
                          "weights": runtime.weights}
                         if choice and choice[0].mode == "static" else None),
            file=str(out), file_bytes=final.stat().st_size, fp32_file_bytes=base.stat().st_size,
            size_vs_fp32=round(final.stat().st_size / base.stat().st_size, 3),
            model=loaded.name, source=loaded.source,
            input_spec=str(loaded.input_spec), data=getattr(dataset, "name", None),
            verification=ExportCheck.from_dict(_plain_row(agreement)), fp32=FileRow.from_dict(_plain_row(fp32_row)),
            latency=latency,
            speedup_vs_fp32=round(best["runtime_fp32"]["median_ms"] / best["runtime"]["median_ms"], 3),
            speedup_vs_pytorch=round(best["pytorch"]["median_ms"] / best["runtime"]["median_ms"], 3),
            slower_than_fp32=request.precision != "fp32" and any(c["verdict"] == "slower" for c in checks.values()),
            slower_than_uncompressed=best["runtime"]["median_ms"] > best["pytorch_uncompressed"]["median_ms"],
            candidates=tuple(FileRow.from_dict(_plain_row(r)) for r in rows) or None,
            choice=choice[1] if choice else None,
            float_layers_rule=rule if request.precision == "int8" and request.int8_mode == "auto" else None,
            warnings=tuple(warnings),
            speed_checks=checks if request.precision != "fp32" else None,
        )
        from studio.core.base.atomic import atomic_path, write_text_atomic

        with atomic_path(out) as tmp:
            shutil.move(final, tmp)
        write_text_atomic(report_path_for(out), json.dumps(report.to_dict(), indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for message in warnings:
        yield Warning(message)
    if report.slower_than_fp32:
        yield Warning(slower_message(report))
    elif report.slower_than_uncompressed:
        yield Warning(slower_than_uncompressed_message(report))
    yield Finished(ExportResult(out, report_path_for(out), report))


def _ratio(fp32: dict, mine: dict) -> float:
    key = "cpu_ms" if "cpu_ms" in fp32 and "cpu_ms" in mine else "median_ms"
    return fp32[key] / mine[key]


def _plain_row(row: dict) -> dict:
    """A measured row as JSON takes it: numpy numbers become Python's, the work file's path goes."""
    return {k: (v.item() if isinstance(v, (np.floating, np.integer, np.bool_)) else v)
            for k, v in row.items() if k != "path"}
