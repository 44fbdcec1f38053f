"""Issue 12 side by side on `sample:minilm-sentiment`, in one run: PyTorch fp32 eager,
litert-torch's dynamic-range int8 out of the box (the studio's TFLite dynamic int8 of the
original), and the studio's recipe (resources/recipes/minilm-fast.yaml: heads + FFN neurons,
distillation fine-tuning) through ONNX Runtime (fp32 and dynamic int8, fused attention) and
TFLite (dynamic int8). For each: accuracy on the held-out snippets, latency (median, p95;
1 and 2 threads, batch 1 × 128 tokens), file size; plus fine-tuning time and machine load.
Prints one JSON object.

    python benchmarks/bench_transformers.py [--recipe PATH] [--max-steps N] [--samples N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
RECIPE = Path(__file__).resolve().parents[1] / "resources" / "recipes" / "minilm-fast.yaml"
TARGET = {"speedup_vs_pytorch": 7.0, "speedup_vs_litert_int8": 1.4, "max_mb": 20.0, "max_accuracy_drop_pt": 0.5}


def export_row(loaded, data, fmt: str, precision: str, out: Path, samples: int | None) -> dict:
    from studio.core.base.events import Finished
    from studio.core.pipelines.export import ExportRequest, export

    mode = "dynamic" if precision == "int8" else "auto"
    request = ExportRequest(fmt, out, precision, force=True, int8_mode=mode, samples=samples)
    try:
        events = list(export(loaded, request, data))
    except Exception as exc:  # a failed conversion is a result too
        return {"error": str(exc)[:300]}
    report = [e for e in events if isinstance(e, Finished)][0].result.report.to_dict()
    return {"file_mb": round(report["file_bytes"] / 1e6, 2), "accuracy": report["verification"]["accuracy"],
            "samples": report["verification"]["samples"],
            "top1_agreement": report["verification"]["top1_agreement"],
            "latency": {t: report["latency"][t]["runtime"] for t in report["latency"]},
            "pytorch_latency": {t: report["latency"][t]["pytorch_uncompressed"] for t in report["latency"]}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", default=str(RECIPE))
    parser.add_argument("--max-steps", type=int, default=None, help="cap fine-tuning steps (a shorter run)")
    parser.add_argument("--samples", type=int, default=None, help="verification cap (default: all held-out)")
    args = parser.parse_args()

    from dataclasses import replace

    from studio.core.base.events import Finished, Note
    from studio.core.data.sources import open_dataset
    from studio.core.model.loaded_model import LoadedModel
    from studio.core.pipelines.finetune import FinetuneSettings
    from studio.core.pipelines.opening import LoadRequest, load_model
    from studio.core.pipelines.run import run
    from studio.core.plan import CompressionPlan

    loaded = load_model(LoadRequest("sample:minilm-sentiment"))
    data = open_dataset("sample", loaded)
    samples = args.samples or len(data.val_idx)
    plan = CompressionPlan.load(Path(args.recipe))
    settings = FinetuneSettings.from_dict(plan.settings.get("finetune"))
    if args.max_steps:
        settings = replace(settings, max_steps=args.max_steps)
    loads, notes, t0 = [], [], time.perf_counter()
    result = None
    for event in run(loaded, plan, data, settings):
        loads.append(os.getloadavg()[0])
        if isinstance(event, Note):
            notes.append(event.message)
            print(event.message, file=sys.stderr, flush=True)
        elif isinstance(event, Finished):
            result = event.result
    report = result.report.to_dict()
    student = LoadedModel(result.model, "minilm-fast", "minilm-fast", loaded.kind, loaded.input_spec,
                          extras=loaded.extras)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows["litert_dynamic_int8_out_of_the_box"] = export_row(loaded, data, "tflite", "int8", work / "o8.tflite", samples)
        for fmt, precision in (("onnx", "fp32"), ("onnx", "int8"), ("tflite", "int8")):
            rows[f"recipe_{fmt}_{precision}"] = export_row(student, data, fmt, precision,
                                                           work / f"r-{precision}.{fmt}", samples)
            print(fmt, precision, rows[f"recipe_{fmt}_{precision}"], file=sys.stderr, flush=True)
    base = rows["litert_dynamic_int8_out_of_the_box"]
    pytorch = base.get("pytorch_latency", {})
    original_accuracy = report["before"]["accuracy"]
    for row in rows.values():
        if "latency" in row and pytorch:
            row["speedup_vs_pytorch_2_threads"] = round(
                pytorch["2_thread"]["median_ms"] / row["latency"]["2_thread"]["median_ms"], 2)
            row["accuracy_drop_pt"] = round(100 * (original_accuracy - row["accuracy"]), 2)
            row.pop("pytorch_latency", None)
    finetune = report.get("finetune") or {}
    print(json.dumps({
        "model": "sample:minilm-sentiment (all-MiniLM-L6-v2 + sentiment head)", "recipe": plan.to_dict(),
        "data": f"{data.name}: {len(data.train_idx)} train / {len(data.val_idx)} held-out",
        "pytorch_fp32_eager": {"accuracy": original_accuracy, "latency": pytorch,
                               "state_mb": round(report["before"]["bytes"] / 1e6, 2)},
        "recipe_pytorch": {"accuracy_after_finetune": report["after"]["accuracy"],
                           "accuracy_before_finetune": (finetune.get("start") or {}).get("accuracy"),
                           "params": report["after"]["params"], "flops": report["after"].get("flops"),
                           "finetune_seconds": finetune.get("seconds"), "steps": finetune.get("steps"),
                           "device": report.get("settings", {}).get("device")},
        "exports": rows, "target": TARGET,
        "run_seconds": round(time.perf_counter() - t0, 1), "cpus": os.cpu_count(),
        "load_average_1min_min_max": [round(min(loads), 2), round(max(loads), 2)] if loads else None,
        "notes": notes,
    }, indent=1, default=str))


if __name__ == "__main__":
    main()
