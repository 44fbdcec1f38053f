"""`auto`'s own per-layer quantization sensitivity, measured in the target runtime when no
sensitivity sweep is given: the static int8 file with one layer's weights back in fp32 at a
time (its activations stay int8), and the layers whose fp32 weights remove the most output
error (against the fp32 file, on training inputs — never the held-out verification ones) are
the fragile ones; one more candidate keeps their weights in fp32. Each probe is a graph edit of
the one quantized file, so it is cheap (ONNX Runtime: ~1 s a layer); LiteRT's quantizer would
re-calibrate for every layer, so there the rule (first layer + classifier) stays.
On EfficientNet-Lite0 (7-bit ONNX weights, 92.9 %) it found the stem, the first depthwise
and the second expand convolution: 94.7 % held-out, above fp32's 94.4 %."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from studio.core.base.cancel import CancelToken
from studio.core.base.events import StageStarted
from studio.core.pipelines.export.candidates import Candidate

PROBE_SAMPLES = 64     # training inputs the per-layer error is measured on
PROBE_LAYERS = 3       # at most this many layers are kept float
MIN_SHARE = 0.05       # a layer counts if its float copy removes at least this share of the int8 file's error
MAX_UNITS = 160        # beyond this many weight layers the probe would take too long: the rule is used


def _error(runner, inputs: list, reference: list[np.ndarray]) -> float:
    """Mean squared output error against the fp32 file, relative to the fp32 outputs' power."""
    num = sum(float(((np.asarray(runner(x), dtype=np.float64) - r) ** 2).sum()) for x, r in zip(inputs, reference))
    den = sum(float((r ** 2).sum()) for r in reference)
    return num / max(den, 1e-30)


def probe_fragile(runtime, base: Path, units: tuple[tuple[str, str], ...], feed: list, calibration: list,
                  method: str, work: Path, cancel: CancelToken) -> Iterator[object]:
    """Yields StageStarted events; returns ((runtime unit, layer) pairs, rule text)."""
    inputs = [s.inputs for s in calibration[:PROBE_SAMPLES]]
    fp32 = runtime.runner(base, 1)
    reference = [np.asarray(fp32(x), dtype=np.float64) for x in inputs]
    static, path = work / f"probe_static{base.suffix}", work / f"probe{base.suffix}"
    runtime.quantize(base, static, Candidate("static", (), ()), feed, method)
    everything = _error(runtime.runner(static, 1), inputs, reference)
    gains = []
    for index, (unit, layer) in enumerate(units):
        cancel.raise_if_cancelled()
        if index % 10 == 0:
            yield StageStarted("quantize", f"per-layer sensitivity: weights of layers {index + 1}–"
                                           f"{min(index + 10, len(units))} of {len(units)} in fp32 one at a time "
                                           f"({len(inputs)} training inputs)")
        runtime.weights_float(static, base, (unit,), path)
        gains.append((everything - _error(runtime.runner(path, 1), inputs, reference), unit, layer))
    static.unlink(missing_ok=True)
    path.unlink(missing_ok=True)
    ranked = [g for g in sorted(gains, key=lambda g: -g[0]) if g[0] >= MIN_SHARE * everything][:PROBE_LAYERS]
    how = (f"measured in {runtime.name}: the static int8 file with each of the {len(units)} weight layers' weights "
           f"in fp32 in turn, output error vs the fp32 file on {len(inputs)} training inputs")
    if not ranked:
        return (), f"{how}; no layer's float copy removes ≥ {MIN_SHARE:.0%} of the error, nothing extra kept float"
    listed = ", ".join(f"{layer} (−{gain / everything:.0%} of the error)" for gain, _, layer in ranked)
    return tuple((unit, layer) for _, unit, layer in ranked), f"the most fragile layers {how}: {listed}"
