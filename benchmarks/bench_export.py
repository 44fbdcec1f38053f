"""Side-by-side exports of the samples, measured in one run: PyTorch fp32 eager vs
ONNX Runtime fp32/int8 vs TFLite fp32/int8 — batch-1 latency (median, p95; 1 and 2
threads), file size and accuracy on held-out data. Prints one JSON object naming the
fastest export per model.

    python benchmarks/bench_export.py [--models digits,minilm] [--samples 200]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODELS = {"digits": "sample:digits-cnn", "minilm": "sample:minilm-sentiment"}
VARIANTS = (("onnx", "fp32"), ("onnx", "int8"), ("tflite", "fp32"), ("tflite", "int8"))


def bench_model(source: str, samples: int, workdir: Path) -> dict:
    from studio.core.data.sources import open_dataset
    from studio.core.base.events import Finished
    from studio.core.pipelines.export import ExportRequest, export
    from studio.core.pipelines.opening import LoadRequest, load_model

    loaded = load_model(LoadRequest(source))
    data = open_dataset("sample", loaded)
    state_bytes = sum(t.numel() * t.element_size() for t in loaded.module.state_dict().values())
    rows, pytorch = {}, None
    for fmt, precision in VARIANTS:
        out = workdir / f"{source.split(':')[1]}-{precision}.{fmt}"
        try:
            events = list(export(loaded, ExportRequest(fmt, out, precision, force=True, samples=samples), data))
        except Exception as exc:  # a failed conversion is a result too
            rows[f"{fmt}_{precision}"] = {"error": str(exc)[:300]}
            continue
        report = [e for e in events if isinstance(e, Finished)][0].result.report.to_dict()
        pytorch = {t: report["latency"][t]["pytorch_uncompressed"] for t in report["latency"]}
        rows[f"{fmt}_{precision}"] = {
            "latency": {t: report["latency"][t]["runtime"] for t in report["latency"]},
            "file_mb": round(report["file_bytes"] / 1e6, 3),
            "size_vs_pytorch": round(report["file_bytes"] / state_bytes, 3),
            "accuracy": report["verification"]["accuracy"],
            "top1_agreement": report["verification"]["top1_agreement"],
            "speedup_2_threads": round(pytorch["2_thread"]["median_ms"] / report["latency"]["2_thread"]["runtime"]["median_ms"], 2),
        }
    valid = {k: v for k, v in rows.items() if "latency" in v}
    fastest = min(valid, key=lambda k: valid[k]["latency"]["2_thread"]["median_ms"]) if valid else None
    return {"pytorch_fp32_eager": {"latency": pytorch, "state_mb": round(state_bytes / 1e6, 3)},
            "exports": rows, "fastest_export": fastest, "verified_on": samples}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="digits,minilm")
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = {name: bench_model(MODELS[name], args.samples, Path(tmp)) for name in args.models.split(",")}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
