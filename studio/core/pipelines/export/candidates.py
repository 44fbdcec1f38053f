"""`auto` int8 is measured, not guessed: the candidate settings worth trying on this model,
each verified on held-out data and timed next to the fp32 file of the same runtime, and the
rule that picks the fastest one within the accuracy budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.core.pipelines.export.request import AGREEMENT_BUDGET


@dataclass(frozen=True)
class Candidate:
    mode: str                       # dynamic | static
    keep_float: tuple[str, ...]     # runtime node names (ONNX) or op scopes (TFLite) left in float
    float_layers: tuple[str, ...]   # the same as layer names, for people

    @property
    def label(self) -> str:
        return f"{self.mode}, {' + '.join(self.float_layers)} float" if self.float_layers else self.mode


def candidates(mode: str, base_float: tuple[tuple[str, str], ...],
               fragile: tuple[tuple[str, str], ...]) -> list[Candidate]:
    """`base_float`: (runtime name, layer) pairs that stay float in every candidate (the plan's
    `quantize: null` layers, the user's keep-float marks); `fragile`: the layers most likely to
    lose accuracy in int8 (kept float in one more candidate per mode when `mode` is auto)."""
    def make(m: str, extra: tuple[tuple[str, str], ...] = ()) -> Candidate:
        pairs = tuple(dict.fromkeys(base_float + extra))
        return Candidate(m, tuple(p[0] for p in pairs), tuple(dict.fromkeys(p[1] for p in pairs)))

    if mode != "auto":
        return [make(mode)]
    out = [make("static"), make("dynamic")]
    if fragile and set(fragile) - set(base_float):
        out.insert(1, make("static", fragile))
        out.append(make("dynamic", fragile))
    return out


def within_budget(row: dict[str, Any], fp32: dict[str, Any], budget: float) -> bool:
    """Labels: accuracy within `budget` of the fp32 file's; otherwise top-1 agreement with
    PyTorch of at least 99 % (or cosine ≥ 0.99 for outputs that are not class scores)."""
    if row.get("accuracy") is not None and fp32.get("accuracy") is not None:
        return row["accuracy"] >= fp32["accuracy"] - budget - 1e-12
    if row.get("top1_agreement") is not None:
        return row["top1_agreement"] >= AGREEMENT_BUDGET
    return (row.get("cosine") or 0.0) >= AGREEMENT_BUDGET


def _quality(row: dict[str, Any]) -> tuple[float, float]:
    return (row.get("accuracy") if row.get("accuracy") is not None else -1.0,
            row.get("top1_agreement") if row.get("top1_agreement") is not None else row.get("cosine") or 0.0)


def pick(rows: list[dict[str, Any]], fp32: dict[str, Any], budget: float) -> tuple[int, str]:
    """(index of the winner, why it won). Fastest within budget; if none is, the most accurate."""
    inside = [i for i, r in enumerate(rows) if r["within_budget"]]
    measure = (f"accuracy ≥ fp32 {fp32['accuracy']:.2%} − {budget * 100:.1f} pt"
               if fp32.get("accuracy") is not None else f"top-1 agreement ≥ {AGREEMENT_BUDGET:.0%}")
    if len(rows) == 1:
        row = rows[0]
        return 0, f"{row['label']} was requested ({'within' if row['within_budget'] else 'OUTSIDE'} the budget: {measure})"
    if inside:
        best = min(inside, key=lambda i: rows[i]["latency_ms"])
        return best, (f"{rows[best]['label']}: the fastest of {len(inside)} candidate(s) within the budget ({measure})"
                      + (f"; {len(rows) - len(inside)} outside it" if len(rows) > len(inside) else ""))
    best = max(range(len(rows)), key=lambda i: _quality(rows[i]))
    return best, (f"no candidate is within the budget ({measure}); {rows[best]['label']} is the most accurate")
