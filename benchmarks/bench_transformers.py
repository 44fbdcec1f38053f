"""Issue 12 side by side on `sample:minilm-sentiment`, in one run: PyTorch fp32 eager,
litert-torch's dynamic-range int8 out of the box (the studio's TFLite dynamic int8 of the
original), and the studio's recipe (resources/recipes/minilm-fast.yaml: heads + FFN neurons,
distillation fine-tuning) through ONNX Runtime (fp32 and dynamic int8, fused attention) and
TFLite (dynamic int8). For each: accuracy on every held-out snippet (in the runtime), latency
(median, p95; 1 and 2 threads, batch 1 x 128 tokens, every file and PyTorch timed round-robin
in one loop), file size; plus fine-tuning time and machine load. Prints one JSON object.

    python benchmarks/bench_transformers.py [--recipe PATH] [--max-steps N] [--samples N]
    python benchmarks/bench_transformers.py --compressed DIR [--gpu-json FILE]
    python benchmarks/bench_transformers.py --plot A.json,B.json docs/minilm-frontier.png

--compressed takes a folder already fine-tuned elsewhere (e.g. with bf16 on a GPU): a studio
compressed folder, or the same with its weights as fp16 shards (`weights*.safetensors`, large
tensors split row-wise as `name@@k`, what a GPU run can send back), reassembled here in fp32.
Only the exports, their verification and the timing then run on this CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    t0 = time.perf_counter()
    try:
        events = list(export(loaded, request, data))
    except Exception as exc:  # a failed conversion is a result too
        return {"error": str(exc)[:300]}
    report = [e for e in events if isinstance(e, Finished)][0].result.report.to_dict()
    return {"file": str(out), "file_mb": round(report["file_bytes"] / 1e6, 2),
            "accuracy": report["verification"]["accuracy"], "samples": report["verification"]["samples"],
            "top1_agreement_with_pytorch": report["verification"]["top1_agreement"],
            "fp32_file": {"file_mb": round(report["fp32"]["file_bytes"] / 1e6, 2),
                          "accuracy": report["fp32"]["accuracy"]},
            "export_seconds": round(time.perf_counter() - t0, 1)}


def assemble(folder: Path, work: Path) -> Path:
    """A compressed folder whose weights came back as shards (what a GPU run can send: fp16,
    large tensors split row-wise as `name@@k`; a table as per-row int8 codes `name@@q[k]` and
    fp32 scales `name@@s`) and whose small files came as one meta.json → a folder with fp32
    model.safetensors that the studio opens."""
    import torch
    from safetensors.torch import load_file, save_file

    if (folder / "model.safetensors").exists():
        return folder
    out = work / folder.name
    out.mkdir(parents=True, exist_ok=True)
    if (folder / "meta.json").exists():
        for name, text in json.loads((folder / "meta.json").read_text()).items():
            (out / name).write_text(text)
    else:
        for name in ("studio.json", "recipe.yaml", "report.json"):
            shutil.copy(folder / name, out / name)
    parts: dict[str, dict[str, dict[int, torch.Tensor]]] = {}
    for shard in sorted(folder.glob("weights*.safetensors")):
        for key, tensor in load_file(str(shard)).items():
            base, _, suffix = key.partition("@@")
            kind = suffix[:1] if suffix[:1] in ("q", "s") else "f"
            index = suffix[1:] if kind != "f" else suffix
            parts.setdefault(base, {}).setdefault(kind, {})[int(index or 0)] = tensor
    state = {}
    for base, kinds in parts.items():
        joined = {k: torch.cat([v[i] for i in sorted(v)]) if len(v) > 1 else v[0] for k, v in kinds.items()}
        value = joined["q"].float() * joined["s"].float()[:, None] if "q" in joined else joined["f"]
        state[base] = value.float() if value.is_floating_point() else value
    save_file(state, str(out / "model.safetensors"))
    return out


def probe_input(loaded, data):
    """Batch 1 x 128 tokens (a held-out snippet at the stored, fixed length), in input-spec order."""
    _, kwargs, _ = next(iter(data.batches("val", 1, pad="fixed")))
    return tuple(kwargs[t.name].numpy() for t in loaded.input_spec.tensors)


def timing(loaded, students: dict, files: dict[str, Path], probe) -> dict:
    from studio.core.pipelines.export.verify import onnx_runner, side_by_side_ms, tflite_runner, torch_runner
    from studio.core.pipelines.export.wrap import ExportWrapper

    out = {}
    for threads in (1, 2):
        runners = {"pytorch_fp32_eager": torch_runner(ExportWrapper(loaded.module, loaded.input_spec).eval(), None)}
        for label, student in students.items():
            runners[f"{label}_pytorch_fp32_eager"] = torch_runner(
                ExportWrapper(student.module, student.input_spec).eval(), None)
        for label, path in files.items():
            runners[label] = (onnx_runner if path.suffix == ".onnx" else tflite_runner)(path, threads)
        out[f"{threads}_thread"] = side_by_side_ms(runners, probe, threads, runs=30, warmup=5)
    return out


def plot(paths: list[str], png: str) -> None:
    """The accuracy/latency frontier of one or more of this benchmark's JSON outputs (1 thread:
    PyTorch's 2-thread times are unreliable on a loaded machine), with the issue's target box."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    base = None
    for path in paths:
        result = json.loads(Path(path).read_text())
        original = result["pytorch_fp32_eager"]
        points = [] if base else [("PyTorch fp32 eager", original["latency"]["1_thread"]["median_ms"],
                                   100 * original["accuracy"])]  # the same model in every file: drawn once
        base = base or (original["latency"]["1_thread"]["median_ms"], 100 * original["accuracy"])
        for label, recipe in result.get("recipes_in_pytorch", {}).items():
            if recipe.get("accuracy_after_finetune") is not None:
                points.append((f"{label} PyTorch fp32 eager", recipe["latency"]["1_thread"]["median_ms"],
                               100 * recipe["accuracy_after_finetune"]))
        for label, row in result["exports"].items():
            if row.get("accuracy") is not None and "1_thread" in row.get("latency", {}) and row.get("samples", 0) > 1000:
                points.append((label.replace("_", " "), row["latency"]["1_thread"]["median_ms"], 100 * row["accuracy"]))
        for label, ms, accuracy in points:
            ax.scatter(ms, accuracy, s=28)
            ax.annotate(f"{label}\n{ms:.1f} ms, {accuracy:.2f} %", (ms, accuracy), fontsize=6.5,
                        textcoords="offset points", xytext=(4, 3))
    ms, accuracy = base
    ax.axvline(ms / TARGET["speedup_vs_pytorch"], color="0.6", ls="--", lw=0.8)
    ax.axhline(accuracy - TARGET["max_accuracy_drop_pt"], color="0.6", ls="--", lw=0.8)
    ax.text(0.01, 0.02, f"target: left of {ms / TARGET['speedup_vs_pytorch']:.1f} ms (7x PyTorch) and above "
            f"{accuracy - TARGET['max_accuracy_drop_pt']:.2f} % (0.5 pt), the dashed lines",
            transform=ax.transAxes, fontsize=6.5, color="0.4")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks([10, 20, 30, 50, 100, 200])
    ax.set_xlabel("median latency, batch 1 x 128 tokens, 1 thread (ms, log)")
    ax.set_ylabel("accuracy on the 2,562 held-out snippets (%)")
    ax.set_title("sample:minilm-sentiment: accuracy vs latency in each runtime", fontsize=9)
    fig.tight_layout()
    fig.savefig(png)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", default=str(RECIPE))
    parser.add_argument("--max-steps", type=int, default=None, help="cap fine-tuning steps (a shorter run)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="override the recipe's epochs (0: structure only, for latency and size)")
    parser.add_argument("--samples", type=int, default=None, help="verification cap (default: all held-out)")
    parser.add_argument("--compressed", nargs="+", default=None,
                        help="already fine-tuned compressed folder(s) (skips the run)")
    parser.add_argument("--gpu-json", default=None, help="the GPU fine-tune's summary, merged into the output")
    parser.add_argument("--oob-samples", type=int, default=None,
                        help="verification cap for the out-of-the-box file only (the original's int8; default: as --samples)")
    parser.add_argument("--no-fp32", action="store_true", help="skip the recipe's ONNX fp32 file (a timing row only)")
    parser.add_argument("--plot", nargs=2, metavar=("JSONS", "PNG"), default=None,
                        help="draw the frontier of earlier outputs (comma-separated JSON files) into PNG and exit")
    args = parser.parse_args()
    if args.plot:
        return plot(args.plot[0].split(","), args.plot[1])

    from dataclasses import replace

    from studio.core.base.events import Finished, Note
    from studio.core.data.sources import open_dataset
    from studio.core.model.loaded_model import LoadedModel
    from studio.core.pipelines.finetune import FinetuneSettings
    from studio.core.pipelines.opening import LoadRequest, load_model
    from studio.core.pipelines.run import run
    from studio.core.plan import CompressionPlan

    t0 = time.perf_counter()
    loads = [os.getloadavg()[0]]
    loaded = load_model(LoadRequest("sample:minilm-sentiment"))
    data = open_dataset("sample", loaded)
    samples = args.samples or len(data.val_idx)
    notes: list[str] = []
    students, reports, plans = {}, {}, {}
    work = Path(tempfile.mkdtemp(prefix="bench-transformers-"))
    try:
        if args.compressed:
            for given in args.compressed:
                folder = assemble(Path(given), work)
                label = Path(given).name
                students[label] = load_model(LoadRequest(str(folder)))
                reports[label] = json.loads((folder / "report.json").read_text())
                plans[label] = CompressionPlan.load(folder / "recipe.yaml").to_dict()
            where = "given folders (fine-tuned elsewhere)"
        else:
            plan = CompressionPlan.load(Path(args.recipe))
            settings = FinetuneSettings.from_dict(plan.settings.get("finetune"))
            if args.epochs is not None:
                settings = replace(settings, epochs=args.epochs)
            if args.max_steps:  # a short run: one validation pass, at its end
                settings = replace(settings, max_steps=args.max_steps, eval_interval=args.max_steps)
            result = None
            for event in run(loaded, plan, data, settings):
                loads.append(os.getloadavg()[0])
                if isinstance(event, Note):
                    notes.append(event.message)
                    print(event.message, file=sys.stderr, flush=True)
                elif isinstance(event, Finished):
                    result = event.result
            label = Path(args.recipe).stem
            reports[label] = result.report.to_dict()
            plans[label] = plan.to_dict()
            students[label] = LoadedModel(result.model, label, label, loaded.kind, loaded.input_spec,
                                          extras=loaded.extras)
            where = "this CPU"
        rows, files = {}, {}
        jobs = []  # the recipe's files first: on a loaded machine their rows (printed as they come) matter most
        for label, student in students.items():
            jobs += [(f"{label}_onnx_int8", student, "onnx", "int8", None),
                     (f"{label}_tflite_int8", student, "tflite", "int8", None)]
        jobs.append(("litert_dynamic_int8_out_of_the_box", loaded, "tflite", "int8", args.oob_samples))
        if not args.no_fp32:
            jobs += [(f"{label}_onnx_fp32", student, "onnx", "fp32", 64)  # timing; int8's export verified fp32
                     for label, student in students.items()]
        for label, model, fmt, precision, cap in jobs:
            path = work / f"{label}.{fmt}"
            rows[label] = export_row(model, data, fmt, precision, path, cap or samples)
            loads.append(os.getloadavg()[0])
            print(label, json.dumps(rows[label]), file=sys.stderr, flush=True)
            if path.exists():
                files[label] = path
        for label in students:
            fp32, int8 = rows.get(f"{label}_onnx_fp32", {}), rows.get(f"{label}_onnx_int8", {})
            if "fp32_file" in int8 and "error" not in fp32:  # its accuracy on every held-out snippet
                fp32.update(accuracy=int8["fp32_file"]["accuracy"], samples=int8["samples"])
        latency = timing(loaded, students, files, probe_input(loaded, data))
        loads.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    first = next(iter(reports.values()))
    original_accuracy = first["before"]["accuracy"]
    for label, row in rows.items():
        row["latency"] = {t: latency[t][label] for t in latency if label in latency[t]}
        if "error" in row or not row["latency"]:
            continue
        for threads, key in (("1_thread", "1_thread"), ("2_thread", "2_threads")):  # 2 threads: the issue's
            base = latency[threads]["pytorch_fp32_eager"]["median_ms"]
            oob = latency[threads].get("litert_dynamic_int8_out_of_the_box", {}).get("median_ms")
            ms = row["latency"][threads]["median_ms"]
            row[f"speedup_vs_pytorch_{key}"] = round(base / ms, 2)
            if oob:
                row[f"speedup_vs_litert_int8_{key}"] = round(oob / ms, 2)
        if row.get("accuracy") is not None:
            row["accuracy_drop_pt"] = round(100 * (original_accuracy - row["accuracy"]), 2)
        row["meets_target"] = bool(row["speedup_vs_pytorch_2_threads"] >= TARGET["speedup_vs_pytorch"]
                                   and row.get("speedup_vs_litert_int8_2_threads", 0) >= TARGET["speedup_vs_litert_int8"]
                                   and row["file_mb"] <= TARGET["max_mb"]
                                   and row.get("accuracy_drop_pt", 99) <= TARGET["max_accuracy_drop_pt"])
    recipes = {}
    for label, report in reports.items():
        finetune = report.get("finetune") or {}
        recipes[label] = {"recipe": plans[label], "accuracy_after_finetune": report["after"]["accuracy"],
                          "accuracy_before_finetune": (finetune.get("start") or {}).get("accuracy"),
                          "params": report["after"]["params"], "flops": report["after"].get("flops"),
                          "latency": {t: latency[t][f"{label}_pytorch_fp32_eager"] for t in latency},
                          "finetune_seconds": finetune.get("seconds"), "steps": finetune.get("steps"),
                          "device": report.get("settings", {}).get("device")}
    gpu = json.loads(Path(args.gpu_json).read_text()) if args.gpu_json else None
    print(json.dumps({
        "model": "sample:minilm-sentiment (all-MiniLM-L6-v2 + sentiment head)",
        "data": f"{data.name}: {len(data.train_idx)} train / {len(data.val_idx)} held-out",
        "fine_tuned_on": where,
        "pytorch_fp32_eager": {"accuracy": original_accuracy, "latency": {t: latency[t]["pytorch_fp32_eager"]
                                                                          for t in latency},
                               "state_mb": round(first["before"]["bytes"] / 1e6, 2),
                               "params": first["before"]["params"], "flops": first["before"].get("flops")},
        "recipes_in_pytorch": recipes, "gpu_finetune": gpu,
        "exports": rows, "target": TARGET, "latency_input": "batch 1 x 128 tokens (a held-out snippet, padded)",
        "run_seconds": round(time.perf_counter() - t0, 1), "cpus": os.cpu_count(),
        "load_average_1min_min_max": [round(min(loads), 2), round(max(loads), 2)],
        "notes": notes,
    }, indent=1, default=str))


if __name__ == "__main__":
    main()
