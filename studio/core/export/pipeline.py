"""The export pipeline: convert, realize the precision, verify in the runtime, report."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
from torch import nn

from studio.core.cancel import CancelToken
from studio.core.errors import StudioError
from studio.core.events import Finished, StageStarted, Warning
from studio.core.export import FORMATS, ExportRequest, ExportResult, report_path_for
from studio.core.loaded_model import LoadedModel


def conv_heavy(model: nn.Module, loaded: LoadedModel) -> bool:
    """Conv FLOPs dominate → static int8 (dynamic int8 slows CNNs); else dynamic."""
    from studio.core.inspect import inspect_model

    tree = inspect_model(model, loaded.input_spec)
    conv = sum(n.flops for n in tree.nodes() if n.type == "Conv2d")
    linear = sum(n.flops for n in tree.nodes() if n.type == "Linear")
    return conv > linear


def _samples(loaded: LoadedModel, dataset, count: int, split: str = "val"):
    from studio.core.export.verify import Sample
    from studio.core.export.wrap import example_args

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


def export(loaded: LoadedModel, request: ExportRequest, dataset=None, baseline: nn.Module | None = None,
           cancel: CancelToken | None = None) -> Iterator[object]:
    """Convert, realize the precision, verify; `baseline` is the uncompressed model for the
    'compressed but not faster' check (defaults to the model itself)."""
    from studio.core.export import onnx_export, tflite_export
    from studio.core.export.prepare import float_copy
    from studio.core.export.verify import compare, onnx_runner, tflite_runner, timings_ms, torch_runner, torch_timings_ms
    from studio.core.export.wrap import ExportWrapper

    cancel = cancel or CancelToken()
    problems = request.problems()
    if problems:
        raise StudioError("Cannot export: " + "; ".join(problems) + ".")
    out = Path(request.out).expanduser()
    if out.suffix != FORMATS[request.format]:
        raise StudioError(f"{out}: a {request.format} file should end in {FORMATS[request.format]}.")
    if out.exists() and not request.force:
        raise StudioError(f"{out} already exists; pass --force to replace it (window: confirm).")
    if not loaded.eager:
        raise StudioError("TorchScript models cannot be re-exported here; open the eager model (file.py:Net --weights W).")
    yield StageStarted("prepare", f"{request.format} {request.precision}")
    model, marks = float_copy(loaded.module)
    samples = _samples(loaded, dataset, request.samples)
    mode = request.int8_mode
    if request.precision == "int8" and mode == "auto":
        mode = "static" if conv_heavy(model, loaded) else "dynamic"
    scope = sorted(marks) if marks else None
    cancel.raise_if_cancelled()
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield StageStarted("convert", f"{request.format} via {'torch.onnx (dynamo)' if request.format == 'onnx' else 'litert-torch'}")
        base = work / f"fp32{FORMATS[request.format]}"
        final = work / f"final{FORMATS[request.format]}"
        calibration = [s.inputs for s in _samples(loaded, dataset, request.samples, split="train")]
        if request.format == "onnx":
            output_name = "logits" if loaded.extras.get("data") or "Classification" in type(loaded.module).__name__ else "output"
            raw = work / "raw.onnx"
            onnx_export.export_fp32(model, loaded.input_spec, raw, output_name)
            nodes = onnx_export.nodes_for_layers(raw, marks) if marks else None
            onnx_export.optimize(raw, base)
            cancel.raise_if_cancelled()
            if request.precision == "fp16":
                yield StageStarted("quantize", "fp16 (ONNX Runtime float16 converter, fp32 inputs/outputs)")
                onnx_export.to_fp16(base, final)
            elif request.precision == "int8":
                if marks and not nodes:
                    yield Warning("No ONNX node matched the plan's quantized layers; quantizing every supported node.")
                    nodes = None
                yield StageStarted("quantize", f"int8 {mode}, per-channel, ONNX Runtime quantizer"
                                   + (f", {len(nodes)} node(s) marked by the plan" if nodes else ", all MatMul/Gemm/Conv"))
                names = [t.name for t in loaded.input_spec.tensors]
                onnx_export.quantize_int8(base, final, mode, nodes, [dict(zip(names, c)) for c in calibration])
            else:
                os.replace(base, final)
            make_runner = onnx_runner
        else:
            tflite_export.export_fp32(model, loaded.input_spec, base)
            cancel.raise_if_cancelled()
            if request.precision in ("fp16", "int8"):
                yield StageStarted("quantize", f"{request.precision} {mode if request.precision == 'int8' else ''} "
                                                "(AI Edge Quantizer, every supported op)")
                keys = tflite_export.signature_inputs(base)
                tflite_export.quantize(base, final, request.precision, mode,
                                       [{k: v.astype(np.int32) if v.dtype.kind in "iu" else v for k, v in zip(keys, c)}
                                        for c in calibration])
            else:
                os.replace(base, final)
            make_runner = tflite_runner
        cancel.raise_if_cancelled()
        yield StageStarted("verify", f"{len(samples)} inputs in {'ONNX Runtime' if request.format == 'onnx' else 'LiteRT'}")
        reference = torch_runner(ExportWrapper(loaded.module, loaded.input_spec).eval(), None)
        runtime = make_runner(final, 2)
        agreement = compare(runtime, reference, samples)
        cancel.raise_if_cancelled()
        base_runner = torch_runner(ExportWrapper(baseline if baseline is not None else loaded.module,
                                                 loaded.input_spec).eval(), None)
        probe = samples[0].inputs
        latency = {}
        for threads in (1, 2):
            latency[f"{threads}_thread"] = {
                "runtime": timings_ms(make_runner(final, threads), probe),
                "pytorch": torch_timings_ms(reference, probe, threads),
                "pytorch_uncompressed": torch_timings_ms(base_runner, probe, threads),
            }
            cancel.raise_if_cancelled()
        best = latency["2_thread"]
        report = {
            "format": request.format, "precision": request.precision, "int8_mode": mode if request.precision == "int8" else None,
            "quantized_layers": scope if request.precision == "int8" else None,
            "file": str(out), "file_bytes": final.stat().st_size, "model": loaded.name, "source": loaded.source,
            "input_spec": str(loaded.input_spec), "verification": agreement, "latency": latency,
            "speedup_vs_pytorch": round(best["pytorch"]["median_ms"] / best["runtime"]["median_ms"], 3),
            "slower_than_uncompressed": best["runtime"]["median_ms"] > best["pytorch_uncompressed"]["median_ms"],
            "data": getattr(dataset, "name", None),
        }
        os.replace(final, out)
        from studio.core.atomic import write_text_atomic

        write_text_atomic(report_path_for(out), json.dumps(report, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if report["slower_than_uncompressed"]:
        yield Warning("The exported model is slower than the uncompressed PyTorch model at batch 1 "
                      f"({best['runtime']['median_ms']:.3f} ms vs {best['pytorch_uncompressed']['median_ms']:.3f} ms).")
    yield Finished(ExportResult(out, report_path_for(out), report))
