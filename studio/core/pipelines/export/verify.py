"""Run an exported file in its own runtime and compare it with the PyTorch model it came
from: output agreement, accuracy when labels exist, batch-1 latency (median, p95) with 1
and 2 threads next to PyTorch's, and file size."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

Runner = Callable[[Sequence[np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Sample:
    inputs: tuple[np.ndarray, ...]   # batch-1 arrays in input-spec order
    label: int | None


def onnx_runner(path: Path, threads: int) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # no busy-waiting workers between runs: timed round-robin with PyTorch, a spinning ORT thread
    # holds a core while PyTorch's two threads run (PyTorch measured 2-10x slower at 2 threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(inputs: Sequence[np.ndarray]) -> np.ndarray:
        return session.run(None, dict(zip(names, inputs)))[0]
    return run


def tflite_runner(path: Path, threads: int) -> Runner:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    inputs_detail = interpreter.get_input_details()
    output_index = interpreter.get_output_details()[0]["index"]

    output_detail = interpreter.get_output_details()[0]

    def run(inputs: Sequence[np.ndarray]) -> np.ndarray:
        for detail, value in zip(inputs_detail, inputs):
            scale, zero = detail["quantization"]
            if scale and value.dtype.kind == "f":  # fully-int8 models take quantized inputs
                info = np.iinfo(detail["dtype"])
                value = np.clip(np.round(value / scale) + zero, info.min, info.max)
            interpreter.set_tensor(detail["index"], value.astype(detail["dtype"]))
        interpreter.invoke()
        out = interpreter.get_tensor(output_index).copy()
        scale, zero = output_detail["quantization"]
        return (out.astype(np.float32) - zero) * scale if scale else out
    return run


def torch_runner(model: nn.Module, keyword_names: list[str] | None) -> Runner:
    def run(inputs: Sequence[np.ndarray]) -> np.ndarray:
        tensors = [torch.from_numpy(np.ascontiguousarray(x)) for x in inputs]
        with torch.no_grad():
            out = model(*tensors)
        return out.float().numpy()
    return run


def _stats(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {"median_ms": round(statistics.median(times), 4),
            "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 4)}


def timings_ms(run: Runner, inputs: Sequence[np.ndarray], runs: int = 30, warmup: int = 5) -> dict[str, float]:
    return side_by_side_ms({"run": run}, inputs, 1, runs, warmup)["run"]


def side_by_side_ms(runners: dict[str, Runner], inputs: Sequence[np.ndarray], threads: int, runs: int = 30,
                    warmup: int = 5) -> dict[str, dict[str, float]]:
    """Batch-1 latency of several runners measured round-robin, so a noisy machine slows
    them alike and their ratios stay meaningful. PyTorch runners use `threads` too. With one
    thread the run happens on this thread, so its CPU time (`cpu_ms`, median) is also recorded:
    the inference's own work, which other processes competing for the cores do not inflate."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    times: dict[str, list[float]] = {name: [] for name in runners}
    cpu: dict[str, list[float]] = {name: [] for name in runners}
    try:
        for i in range(warmup + runs):
            for name, run in runners.items():
                start, start_cpu = time.perf_counter(), time.thread_time()
                run(inputs)
                if i >= warmup:
                    times[name].append((time.perf_counter() - start) * 1000)
                    cpu[name].append((time.thread_time() - start_cpu) * 1000)
    finally:
        torch.set_num_threads(previous)
    return {name: dict(_stats(values), **({"cpu_ms": round(statistics.median(cpu[name]), 4)} if threads == 1 else {}))
            for name, values in times.items()}


def repeated_side_by_side_ms(runners: dict[str, Runner], inputs: Sequence[np.ndarray], threads: int,
                             repeats: int = 3, runs: int = 20, once: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """`side_by_side_ms` `repeats` times (the runners named in `once` only in the first):
    median and p95 of the repeats' medians and p95s, plus each repeat's median, whose spread
    shows how much this machine's load moves the numbers."""
    rounds = [side_by_side_ms(runners if not i else {k: v for k, v in runners.items() if k not in once},
                              inputs, threads, runs) for i in range(repeats)]
    out: dict[str, dict[str, Any]] = {}
    for name in runners:
        stats = [r[name] for r in rounds if name in r]
        out[name] = {"median_ms": round(statistics.median(s["median_ms"] for s in stats), 4),
                     "p95_ms": round(statistics.median(s["p95_ms"] for s in stats), 4),
                     "repeat_medians_ms": [s["median_ms"] for s in stats]}
        if all("cpu_ms" in s for s in stats):
            out[name].update(cpu_ms=round(statistics.median(s["cpu_ms"] for s in stats), 4),
                             repeat_cpu_ms=[s["cpu_ms"] for s in stats])
    return out


SAME_SPEED = 0.05  # a ratio this close to 1 in some repeat means "the same speed"


def speed_check(latency: dict[str, dict[str, Any]], who: str = "runtime", against: str = "runtime_fp32") -> dict:
    """fp32 time / this file's time in each repeat: 'faster' when every repeat says faster by
    more than SAME_SPEED, 'slower' when every repeat says slower by more, else 'same' (the
    difference is within what the repeats disagree on). With one thread the ratios are of CPU
    time (the work itself; wall time on a shared machine adds waiting for a core), wall time
    otherwise; `wall_ratio` is always the wall-clock one."""
    key = "repeat_cpu_ms" if latency[who].get("repeat_cpu_ms") and latency[against].get("repeat_cpu_ms") \
        else "repeat_medians_ms"
    mine = latency[who].get(key) or [latency[who]["median_ms"]]
    theirs = latency[against].get(key) or [latency[against]["median_ms"]]
    ratios = [round(b / a, 3) for a, b in zip(mine, theirs) if a > 0]
    verdict = ("faster" if min(ratios) > 1 + SAME_SPEED else "slower" if max(ratios) < 1 - SAME_SPEED
               else "same")
    wall = round(latency[against]["median_ms"] / latency[who]["median_ms"], 3)
    ratio = round(statistics.median(theirs) / statistics.median(mine), 3) if key == "repeat_cpu_ms" else wall
    return {"ratio": ratio, "repeat_ratios": ratios, "verdict": verdict, "measure": "cpu" if key == "repeat_cpu_ms" else "wall",
            "wall_ratio": wall}


def torch_timings_ms(run: Runner, inputs: Sequence[np.ndarray], threads: int) -> dict[str, float]:
    return side_by_side_ms({"run": run}, inputs, threads)["run"]


def reference_outputs(reference: Runner, samples: Sequence[Sample]) -> list[np.ndarray]:
    """PyTorch's outputs, computed once and compared with every exported candidate. One thread:
    batch-1 ops gain little from a pool, and a pool waiting on a busy machine's scheduler at
    every op makes a forward pass many times slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return [np.asarray(reference(s.inputs), dtype=np.float64) for s in samples]
    finally:
        torch.set_num_threads(previous)


def compare(runtime: Runner, reference: Runner | Sequence[np.ndarray],
            samples: Sequence[Sample]) -> dict[str, float | int | None]:
    """Agreement of the runtime's outputs with PyTorch's on the same batch-1 inputs, and
    accuracy with the number of labelled samples it is computed on."""
    expected = reference_outputs(reference, samples) if callable(reference) else reference
    max_abs, dots, norms_a, norms_b, agree, correct, labeled = 0.0, 0.0, 0.0, 0.0, 0, 0, 0
    classifier = True
    for sample, b in zip(samples, expected):
        a = np.asarray(runtime(sample.inputs), dtype=np.float64)
        max_abs = max(max_abs, float(np.abs(a - b).max()))
        dots += float((a * b).sum())
        norms_a += float((a * a).sum())
        norms_b += float((b * b).sum())
        classifier = classifier and a.ndim == 2
        agree += int(a.reshape(a.shape[0], -1).argmax(-1)[0] == b.reshape(b.shape[0], -1).argmax(-1)[0])
        if sample.label is not None and a.ndim == 2:
            labeled += 1
            correct += int(a.argmax(-1)[0] == sample.label)
    n = len(samples)
    return {
        "samples": n, "max_abs": max_abs, "cosine": dots / max((norms_a * norms_b) ** 0.5, 1e-30),
        "top1_agreement": agree / n if classifier and n else None,
        "accuracy": correct / labeled if labeled else None, "labeled_samples": labeled,
    }
