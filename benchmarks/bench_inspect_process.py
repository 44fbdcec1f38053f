"""What a user waits for: the whole `studio inspect MODEL --json` process, start to exit.

Models (random weights, built once into a folder, not timed): BERT-base from `BertConfig()`,
a 135 M Llama-architecture causal LM (SmolLM-135M's shape: 30 layers, hidden 576, GQA 9/3
heads, tied embeddings, safetensors), and a Llama-2-7B-shaped config.json with no weights,
opened on the meta device. Each is run once to warm the file cache, then `--runs` times; the
median wall time, the median CPU time (user+sys of the child: less sensitive to other work on
a shared machine) and the peak RSS are reported, next to two floors measured the same way in
the same run: a bare `python -c "import torch"`, and a process that only imports the model's
transformers class the way the studio does (`hf_imports.import_model_code`: transformers'
optional torchao/scipy imports skipped), i.e. what any tool that builds the model with
transformers pays before it reads a byte of the folder. `over_model_import_s` is then the
studio's own share: opening, inspecting, counting FLOPs and printing.

The models are built by a child process, so this process never imports torch: a child's peak
RSS (os.wait4) also counts the parent's pages at the moment it forked.

Targets (warm cache, quiet machine): BERT-base <= 2.5 s, 135 M LM <= 3 s, 7 B meta <= 10 s
and <= 1.5 GB RSS.

    python benchmarks/bench_inspect_process.py [--runs 5] [--models-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS_S = {"bert-base": 2.5, "llama-135m": 3.0, "llama-7b-meta": 10.0}
META_RSS_TARGET_MB = 1536


MODEL_CLASS = {"bert-base": "BertModel", "llama-135m": "LlamaForCausalLM", "llama-7b-meta": "LlamaForCausalLM"}
LEAN_IMPORT = ("import json, sys; from studio.core.model.loaders.hf_imports import import_model_code; "
               "import_model_code(json.load(open(sys.argv[1]))); import transformers; getattr(transformers, sys.argv[2])")


def folders_in(root: Path) -> dict[str, Path]:
    return {"bert-base": root / "bert-base", "llama-135m": root / "llama-135m", "llama-7b-meta": root / "llama-7b"}


def build_models(root: Path) -> None:
    """The three folders (kept if already there, so repeated runs skip the build). Runs in a
    child process (`--build-into`)."""
    folders = folders_in(root)
    if all((folder / "config.json").is_file() for folder in folders.values()):
        return
    import torch
    from transformers import BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    BertModel(BertConfig()).save_pretrained(folders["bert-base"])
    small = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                        num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)
    LlamaForCausalLM(small).save_pretrained(folders["llama-135m"])
    big = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=32, architectures=["LlamaForCausalLM"])
    big.save_pretrained(folders["llama-7b-meta"])  # config.json only: opens on the meta device


def timed_process(argv: list[str]) -> dict[str, object]:
    """Wall seconds, CPU seconds and peak RSS (MB) of this one child (os.wait4's own rusage)."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=stdout, stderr=stderr, env={**os.environ, "PYTHONWARNINGS": "ignore"})
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {stderr.read().strip()[-500:]}")
        return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024,
                "stdout": stdout.read()}


def measure(argv: list[str], runs: int) -> dict[str, object]:
    timed_process(argv)  # warm the file cache and the bytecode caches
    samples = [timed_process(argv) for _ in range(runs)]
    result: dict[str, object] = {
        "median_s": round(statistics.median(s["wall"] for s in samples), 3),
        "median_cpu_s": round(statistics.median(s["cpu"] for s in samples), 3),
        "runs_s": [round(s["wall"], 3) for s in samples],
        "peak_rss_mb": round(max(s["rss_mb"] for s in samples), 1),
    }
    result["_stdout"] = samples[-1]["stdout"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models-dir", type=Path, default=None, help="reuse (or build into) this folder")
    parser.add_argument("--build-into", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_into is not None:
        build_models(args.build_into)
        return
    root = args.models_dir or Path(tempfile.mkdtemp(prefix="studio-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    start = time.perf_counter()
    subprocess.run([python, __file__, "--build-into", str(root)], check=True, timeout=1800)
    build_s = time.perf_counter() - start
    out: dict[str, object] = {"runs": args.runs, "build_models_s": round(build_s, 1),
                              "load_average": [round(x, 2) for x in os.getloadavg()]}
    out["import_torch"] = _public(measure([python, "-c", "import torch"], args.runs))
    studio = [python, "-m", "studio", "inspect"]
    for name, folder in folders_in(root).items():
        floor = _public(measure([python, "-c", LEAN_IMPORT, str(folder / "config.json"), MODEL_CLASS[name]],
                                args.runs))
        result = measure(studio + [str(folder), "--json"], args.runs)
        tree = json.loads(result["_stdout"])
        entry = _public(result)
        entry.update(params=tree["total_params"], bytes=tree["total_bytes"], flops=tree["total_flops"],
                     target_s=TARGETS_S[name], ratio_to_target=round(entry["median_s"] / TARGETS_S[name], 2),
                     over_import_torch_s=round(entry["median_s"] - out["import_torch"]["median_s"], 3),
                     model_import_floor=floor,
                     over_model_import_s=round(entry["median_s"] - floor["median_s"], 3),
                     over_model_import_cpu_s=round(entry["median_cpu_s"] - floor["median_cpu_s"], 3))
        out[name] = entry
    out["llama-7b-meta"]["rss_target_mb"] = META_RSS_TARGET_MB
    out["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    out["note"] = ("FLOPs are exact for the input spec (1x128 tokens): counted on a meta copy, attention "
                   "included; params/bytes are exact; peak_rss_mb is each process's own maximum.")
    print(json.dumps(out, indent=1))


def _public(result: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in result.items() if not k.startswith("_")}


if __name__ == "__main__":
    main()
