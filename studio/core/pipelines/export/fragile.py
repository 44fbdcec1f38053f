"""Which layers `auto` also tries in float: the most quantization-sensitive layers of a
sensitivity sweep when one is given (its "all int8 but this layer" view measures exactly what
keeping one layer float buys back), else the first weight layer and the classifier."""

from __future__ import annotations

import json
import math
from pathlib import Path

from torch import nn

from studio.core.base.errors import StudioError
from studio.core.pipelines.sensitivity.result import SensitivityResult

HEURISTIC_NOTE = ("first weight layer and classifier (heuristic: they see the raw input and produce the logits; "
                  "no per-layer quantization sensitivity was available)")
SWEEP_LAYERS = 3          # at most this many layers from a sweep are kept float in the extra candidate
INT8_LABELS = ("int8 w+a", "int8")  # the sweep's quantization settings, preferred first


def load_sweep(path: Path, module: nn.Module) -> SensitivityResult:
    """A `studio sensitivity` result measured on this model, with a quantization view."""
    path = Path(path).expanduser()
    try:
        result = SensitivityResult.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise StudioError(f"{path}: cannot read the sensitivity result ({exc.strerror or exc}).") from None
    except (ValueError, KeyError, TypeError):
        raise StudioError(f"{path}: not a sensitivity result written by `studio sensitivity`.") from None
    names = {name for name, _ in module.named_modules()}
    missing = [layer for layer in result.layers if layer not in names]
    if missing:
        raise StudioError(f"{path} was measured on another model: this one has no layer {missing[0]!r}.")
    if not result.inverse and not any(result.setting(label) for label in INT8_LABELS):
        raise StudioError(f"{path} has no quantization sensitivity; run `studio sensitivity` with quant in "
                          "--technique.")
    return result


def sweep_layers(result: SensitivityResult, source: str, count: int = SWEEP_LAYERS) -> tuple[list[str], str]:
    """(layers, rule): the layers whose float copy recovers the most of the int8 loss.
    Inverse view: gain = drop with every layer int8 − drop with all but this one int8.
    Without it: the layers whose own int8 copy drops the metric most."""
    if result.inverse and not math.isnan(result.all_int8):
        all_drop = result.baseline - result.all_int8
        gains = [(all_drop - c.drop, c.layer) for c in result.inverse if c.ok]
        how = "'all int8 but this layer' view: metric recovered by keeping it float"
    else:
        label = next(label for label in INT8_LABELS if result.setting(label))
        gains = [(c.drop, c.layer) for c in result.cells if c.setting == label and c.ok]
        how = f"'{label}' column: metric drop with only this layer int8"
    ranked = [(g, layer) for g, layer in sorted(gains, key=lambda p: -p[0]) if g > 1e-9][:count]
    layers = [layer for _, layer in ranked]
    if not layers:
        return [], f"sensitivity sweep {source}: no layer's float copy helps ({how}); nothing extra kept float"
    listed = ", ".join(f"{layer} ({gain * 100:+.2f} pt)" for gain, layer in ranked)
    return layers, f"the most quantization-sensitive layers of the sensitivity sweep {source} ({how}): {listed}"


def fragile_units(runtime, base: Path, sweep: SensitivityResult | None, source: str = ""):
    """((runtime unit, layer) pairs, rule) for the extra `auto` candidate."""
    if sweep is None:
        return runtime.fragile_units(base), HEURISTIC_NOTE
    layers, rule = sweep_layers(sweep, source)
    units = runtime.float_units(base, layers) if layers else ()
    if layers and not units:
        return runtime.fragile_units(base), (f"{rule}; no node of the file implements them, so the heuristic "
                                             f"was used: {HEURISTIC_NOTE}")
    return units, rule
