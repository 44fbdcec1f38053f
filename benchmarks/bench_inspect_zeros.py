"""Zero counting in inspection: numpy (one thread, what `count_zeros` uses) against
`torch.count_nonzero` (its thread pool, what inspection used before), side by side on a
random-weight Llama of SmolLM-135M's sizes saved as a Hugging Face folder, and what the
count is of the whole `studio inspect --json`.

Each figure is (CPU s of all threads, wall s); the two counters alternate, three times. Both
give the same count (checked). Prints one JSON object.

    python benchmarks/bench_inspect_zeros.py [--layers 30]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _clock(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    value = fn()
    return value, (round(time.process_time() - cpu, 3), round(time.perf_counter() - wall, 3))


def _torch_zeros(tensor) -> int:
    import torch

    data = tensor.detach()
    return data.numel() - int(torch.count_nonzero(data))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=30)
    args = parser.parse_args()
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=args.layers,
                         num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                         tie_word_embeddings=True)
    torch.manual_seed(0)
    temp = tempfile.mkdtemp(prefix="bench-zeros-")
    try:
        folder = Path(temp) / "llama"
        LlamaForCausalLM(config).save_pretrained(folder)
        print(json.dumps(_measure(folder, args.layers)))
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _measure(folder: Path, layers: int) -> dict:
    import torch

    import studio.core.model.inspection as inspection
    from studio.core.pipelines.opening import LoadRequest, load_model

    loaded = load_model(LoadRequest(str(folder)))
    params = list({id(p): p for p in loaded.module.parameters()}.values())
    result: dict = {"model": f"LlamaForCausalLM (SmolLM-135M sizes, {layers} layers, random weights)",
                    "params": sum(p.numel() for p in params), "tensors": len(params),
                    "torch_threads": torch.get_num_threads(), "count_only": {"numpy": [], "torch": []},
                    "inspect_model": {"numpy": [], "torch": []}}
    numpy_count = inspection.count_zeros
    for _ in range(3):
        for name, count in (("numpy", numpy_count), ("torch", _torch_zeros)):
            total, figures = _clock(lambda: sum(count(p) for p in params))
            result["count_only"][name].append(figures)
            result.setdefault("zeros", {})[name] = total
            inspection.count_zeros = count
            tree, figures = _clock(lambda: inspection.inspect_model(loaded.module, loaded.input_spec))
            inspection.count_zeros = numpy_count
            result["inspect_model"][name].append(figures)
            assert tree.root.zero_params == total
    assert result["zeros"]["numpy"] == result["zeros"]["torch"]
    before, wall = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("studio")), "inspect", str(folder), "--json"], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["studio_inspect_json_process"] = (round(after.ru_utime + after.ru_stime - before.ru_utime
                                                   - before.ru_stime, 3), round(time.perf_counter() - wall, 3))
    return result


if __name__ == "__main__":
    main()
