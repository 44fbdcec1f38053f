"""Compressing a 135 M causal LM with realized int4 on every Linear, as a user runs it: the whole
`studio compress MODEL --recipe R --out O --data text:FILE --json` process, start to exit.

The model is bench_inspect_process's 135 M Llama (SmolLM-135M's shape, random weights, tied
embeddings; built once under --models-dir and reused), given a word-level tokenizer trained on
the bundled text so `text:` data can window it. Measured: peak RSS of the compress process
(os.wait4), next to the fp32 model's bytes (target: peak <= 1.5x), and to three reference
processes measured the same way: the imports alone (`imports_only_rss_mb`; the JSON also gives
`ratio_peak_minus_imports_to_fp32` = (peak - imports) / fp32 bytes, the part that scales with
the model), the imports plus loading the model, and
the same compression with the original kept (`run(..., owned=False)`, what the window's
in-process path does: the original is measured after compressing, so it stays loaded) — the
CLI compresses its own model in place (`owned=True`); `--no-copy-reference` skips that one;
wall and CPU time; perplexity before/after int4 on the bundled text (random weights: a smoke
number, not a quality figure); the packed bytes in the saved folder against the formula
ceil(N*K/2) + 4*N*groups summed over the Linears.

    python benchmarks/bench_compress_llm.py [--models-dir DIR] [--group-size 64] [--no-copy-reference]
                                            [--latency-runs N]

`--latency-runs N` times N batch-1 forwards per model (after one warm-up) instead of the
CLI's 21 (+3): for memory measurements on a loaded machine, where those forwards take most of
the run; the peak is the same (the timing loop holds one example's activations), the
report's latency is then not the CLI's.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inspect_process import build_models, folders_in, timed_process  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEXT = ROOT / "resources" / "data" / "pride_and_prejudice_ch1.txt"
TARGET_RATIO = 1.5


def text_model(llama: Path) -> Path:
    """The 135 M folder with a tokenizer beside it (weights linked, not copied)."""
    folder = llama.parent / "llama-135m-text"
    if (folder / "tokenizer.json").is_file():
        return folder
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    folder.mkdir(exist_ok=True)
    for item in llama.iterdir():
        target = folder / item.name
        if not target.exists():
            target.symlink_to(item.resolve()) if item.suffix == ".safetensors" else shutil.copy(item, target)
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train([str(TEXT)], trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(folder)
    return folder


# the CLI itself, with fewer timed forwards (--latency-runs)
FEWER_RUNS = """
import functools, sys
import studio.core.pipelines.run as run_module
runs = int(sys.argv[1])
run_module.forward_times = functools.partial(run_module.forward_times, runs=runs, warmup=1)
run_module.compare_latency = functools.partial(run_module.compare_latency, runs=runs, warmup=1)
"""
CLI = FEWER_RUNS + """
from studio.cli.main import main
sys.exit(main(sys.argv[2:]))
"""

# what the CLI's compress imports before it reads the model: the studio, and the model's transformers class by the
# studio's own route (hf_imports: transformers' optional quantization packages skipped; importing
# transformers.modeling_utils directly pulls torchao when it is installed: 381 MiB instead of ~336)
IMPORTS_ONLY = """
import json, sys
import studio.cli.main, studio.core.pipelines.run
from studio.core.model.loaders.hf_imports import import_model_code
import_model_code(json.load(open(sys.argv[1])))
import transformers
transformers.LlamaForCausalLM
"""

# the CLI's compress, but keeping the original (as a caller that goes on using it must)
KEEP_ORIGINAL = FEWER_RUNS + """
from studio.core.base.events import Finished
from studio.core.data.sources import open_dataset
from studio.core.pipelines.compressed_dir import save_compressed
from studio.core.pipelines.opening import LoadRequest, load_model
from studio.core.pipelines.run import run
from studio.core.plan import CompressionPlan
folder, recipe, out, data = sys.argv[2:6]
loaded = load_model(LoadRequest(folder))
plan = CompressionPlan.load(recipe)
events = run(loaded, plan, open_dataset(data, loaded), owned=False)
result = next(e.result for e in events if isinstance(e, Finished))
save_compressed(result, out, force=True)
"""


def linear_shapes(config: dict) -> list[tuple[int, int]]:
    """(out, in) of every Linear of a Llama config, the output layer included."""
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    kv = hidden // config["num_attention_heads"] * config["num_key_value_heads"]
    block = [(hidden, hidden), (kv, hidden), (kv, hidden), (hidden, hidden), (inter, hidden), (inter, hidden),
             (hidden, inter)]
    return block * config["num_hidden_layers"] + [(config["vocab_size"], hidden)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models-dir", default="/tmp/bench/models")
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--no-copy-reference", action="store_true", help="skip the run that keeps the original")
    parser.add_argument("--latency-runs", type=int, default=None,
                        help="timed batch-1 forwards per model (default: the CLI's own count)")
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    py = sys.executable
    if args.prepare:  # in a child: this process must not grow before it forks the measured ones
        build_models(Path(args.models_dir))
        print(text_model(folders_in(Path(args.models_dir))["llama-135m"]))
        return
    # A child's peak RSS (os.wait4) also counts the parent's pages at the moment it forked, so
    # the models are built in a child and nothing heavy (torch, safetensors) is imported here
    # before the measured processes have run.
    prepared = subprocess.run([py, __file__, "--prepare", "--models-dir", args.models_dir], check=True,
                              capture_output=True, text=True, timeout=3600)
    folder = Path(prepared.stdout.strip().splitlines()[-1])
    config = json.loads((folder / "config.json").read_text())
    group = args.group_size
    formula = sum(math.ceil(n * k / 2) + 4 * n * math.ceil(k / group) for n, k in linear_shapes(config))
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "int4.json"
        recipe.write_text(json.dumps({"rules": [{"layers": "*", "quantize": {"dtype": "int4", "group_size": group}},
                                                {"layers": "model.embed_tokens", "quantize": None}]}))
        out = Path(tmp) / "out"
        imports = timed_process([py, "-c", IMPORTS_ONLY, str(folder / "config.json")])
        loading = timed_process([py, "-c", "from studio.core.pipelines.opening import LoadRequest, load_model; "
                                           f"load_model(LoadRequest({str(folder)!r}))"])
        cli = ["compress", str(folder), "--recipe", str(recipe), "--out", str(out), "--data", f"text:{TEXT}", "--json",
               "--force"]
        runs = args.latency_runs
        run = timed_process([py, "-m", "studio", *cli] if runs is None else [py, "-c", CLI, str(runs), *cli])
        report = json.loads(run["stdout"])
        kept = None if args.no_copy_reference else timed_process([py, "-c", KEEP_ORIGINAL, str(runs or 21), str(folder),
                                                                   str(recipe), str(Path(tmp) / "kept"),
                                                                   f"text:{TEXT}"])
        from safetensors import safe_open  # (imports torch: only now, the measured processes are done)

        with safe_open(str(folder / "model.safetensors"), "pt") as f:
            fp32_bytes = sum(math.prod(f.get_slice(k).get_shape()) * 4 for k in f.keys())  # all float32
        with safe_open(str(out / "model.safetensors"), "pt") as f:
            packed = {k: f.get_tensor(k) for k in f.keys() if k.endswith((".codes", ".scales"))}
        packed_bytes = sum(t.numel() * t.element_size() for t in packed.values())
        file_bytes = (out / "model.safetensors").stat().st_size
    mb = 1024 * 1024
    peak, imports_mb = run["rss_mb"], imports["rss_mb"]
    result = {
        "model": "llama-135m (SmolLM-135M shape, random weights, tied embeddings)",
        "recipe": f"int4 g{group} on every Linear (7 per block x 30, and lm_head), embedding fp32",
        "fp32_mb": round(fp32_bytes / mb, 1),
        # the whole `studio compress` process, start to exit (os.wait4's ru_maxrss)
        "peak_rss_mb": round(peak, 1),
        "ratio_peak_to_fp32": round(peak * mb / fp32_bytes, 3),
        "target_ratio": TARGET_RATIO,
        # the same interpreter importing what the CLI's compress imports (studio, torch, transformers' Llama),
        # nothing else: a fixed cost that does not grow with the model
        "imports_only_rss_mb": round(imports_mb, 1),
        # what the model and its compression add above that fixed cost
        "peak_minus_imports_mb": round(peak - imports_mb, 1),
        "ratio_peak_minus_imports_to_fp32": round((peak - imports_mb) * mb / fp32_bytes, 3),
        "reference_load_only_rss_mb": round(loading["rss_mb"], 1),
        "reference_original_kept_rss_mb": None if kept is None else round(kept["rss_mb"], 1),
        "reference_original_kept_ratio_to_fp32": None if kept is None else round(kept["rss_mb"] * mb / fp32_bytes, 3),
        "reference_original_kept_wall_s": None if kept is None else round(kept["wall"], 2),
        "latency_runs": runs or "the CLI's (21 + 3 warm-up)",
        "compress_wall_s": round(run["wall"], 2),
        "compress_cpu_s": round(run["cpu"], 2),
        "load_only_wall_s": round(loading["wall"], 2),
        "report_timing": report.get("timing"),
        "perplexity_before": report["before"].get("perplexity"),
        "perplexity_after": report["after"].get("perplexity"),
        "perplexity_note": "random weights on a 4.5 KB text: a smoke number (the pipeline runs), not a quality figure",
        "packed_layers": sum(1 for k in packed if k.endswith(".codes")),
        "packed_bytes": packed_bytes,
        "packed_formula_bytes": formula,
        "packed_matches_formula": packed_bytes == formula,
        "folder_weights_mb": round(file_bytes / mb, 1),
        "report_bytes_mb": {"before": round(report["before"]["bytes"] / mb, 1),
                            "after": round(report["after"]["bytes"] / mb, 1)},
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
