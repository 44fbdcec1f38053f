"""`auto` int8 is measured, not guessed: the candidate settings worth trying on this model,
each verified on held-out data and timed next to the fp32 file of the same runtime, and the
rule that picks the fastest one within the accuracy budget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from studio.core.pipelines.export.request import AGREEMENT_BUDGET

SPEED_NOISE = 0.10  # speed ratios closer than this count as the same speed
FASTER = 1.05       # a candidate is faster than the fp32 file above this speed ratio (verify.SAME_SPEED)
NOT_FASTER = "NO CANDIDATE WITHIN THE BUDGET IS FASTER THAN THE FP32 FILE"


@dataclass(frozen=True)
class Candidate:
    mode: str                       # dynamic | static
    keep_float: tuple[str, ...]     # runtime node names (ONNX) or op scopes (TFLite) left in float
    float_layers: tuple[str, ...]   # the same as layer names, for people (with those of float_weights)
    float_weights: tuple[str, ...] = ()  # units whose weights alone stay fp32 (their activations int8)

    @property
    def label(self) -> str:
        n = len(self.float_weights)
        whole, weights = (self.float_layers[:-n], self.float_layers[-n:]) if n else (self.float_layers, ())
        parts = ([f"{' + '.join(whole)} float"] if whole else []) + ([f"{' + '.join(weights)} fp32 weights"]
                                                                      if weights else [])
        return ", ".join([self.mode, *parts])


def candidates(mode: str, base_float: tuple[tuple[str, str], ...],
               fragile: tuple[tuple[str, str], ...], probed: tuple[tuple[str, str], ...] = ()) -> list[Candidate]:
    """`base_float`: (runtime name, layer) pairs that stay float in every candidate (the plan's
    `quantize: null` layers, the user's keep-float marks); `fragile`: the layers most likely to
    lose accuracy in int8 (sweep or rule; kept float in one more candidate per mode when `mode`
    is auto); `probed`: the fragile layers measured in the runtime (one more static candidate)."""
    def make(m: str, extra: tuple[tuple[str, str], ...] = ()) -> Candidate:
        pairs = tuple(dict.fromkeys(base_float + extra))
        return Candidate(m, tuple(p[0] for p in pairs), tuple(dict.fromkeys(p[1] for p in pairs)))

    if mode != "auto":
        return [make(mode)]
    out = [make("static"), make("dynamic")]
    if fragile and set(fragile) - set(base_float):
        out.insert(1, make("static", fragile))
        out.append(make("dynamic", fragile))
    probed = tuple(p for p in probed if p not in base_float)
    if probed:
        plain = make("static")
        out.insert(out.index(make("dynamic")),
                   Candidate("static", plain.keep_float, plain.float_layers + tuple(p[1] for p in probed),
                             tuple(p[0] for p in probed)))
    return out


def within_budget(row: dict[str, Any], fp32: dict[str, Any], budget: float) -> bool:
    """Labels: accuracy at least (1 − `budget`) of the fp32 file's (relative: 0.005 keeps
    99.5 % of it); otherwise top-1 agreement with PyTorch of at least 99 % (or cosine ≥ 0.99
    for outputs that are not class scores)."""
    if row.get("accuracy") is not None and fp32.get("accuracy") is not None:
        return row["accuracy"] >= fp32["accuracy"] * (1 - budget) - 1e-12
    if row.get("top1_agreement") is not None:
        return row["top1_agreement"] >= AGREEMENT_BUDGET
    return (row.get("cosine") or 0.0) >= AGREEMENT_BUDGET


def budget_text(fp32: dict[str, Any], budget: float) -> str:
    if fp32.get("accuracy") is None:
        return f"top-1 agreement ≥ {AGREEMENT_BUDGET:.0%}"
    return (f"accuracy ≥ {(1 - budget) * 100:g} % of fp32's {fp32['accuracy']:.2%}, "
            f"i.e. ≥ {fp32['accuracy'] * (1 - budget):.2%}")


def _quality(row: dict[str, Any]) -> tuple[float, float]:
    return (row.get("accuracy") if row.get("accuracy") is not None else -1.0,
            row.get("top1_agreement") if row.get("top1_agreement") is not None else row.get("cosine") or 0.0)


def pick(rows: list[dict[str, Any]], fp32: dict[str, Any], budget: float) -> tuple[int, str]:
    """(index of the winner, why it won). Within budget, the fastest by `speed_vs_fp32`; the
    candidates within SPEED_NOISE of it count as equally fast (batch-1 timings on a shared
    CPU move that much between runs), and of those the most accurate, then the smallest, wins.
    If none is within budget, the most accurate."""
    inside = [i for i, r in enumerate(rows) if r["within_budget"]]
    measure = budget_text(fp32, budget)
    if len(rows) == 1:
        row = rows[0]
        return 0, f"{row['label']} was requested ({'within' if row['within_budget'] else 'OUTSIDE'} the budget: {measure})"
    if inside:
        top = max(rows[i]["speed_vs_fp32"] for i in inside)
        fast = [i for i in inside if rows[i]["speed_vs_fp32"] >= top / (1 + SPEED_NOISE)]
        best = max(fast, key=lambda i: (*_quality(rows[i]), -rows[i]["file_bytes"]))
        rest = f"; {len(rows) - len(inside)} outside it" if len(rows) > len(inside) else ""
        if top < FASTER:
            return best, _not_faster(rows, inside, best, measure)
        if len(fast) == 1:
            return best, (f"{rows[best]['label']}: the fastest of {len(inside)} candidate(s) within the budget "
                          f"({measure}){rest}")
        return best, (f"{rows[best]['label']}: of the {len(inside)} candidate(s) within the budget ({measure}), "
                      f"{len(fast)} are equally fast (speed within {SPEED_NOISE:.0%} of the fastest) and it is the "
                      f"most accurate of them{rest}")
    best = max(range(len(rows)), key=lambda i: _quality(rows[i]))
    return best, (f"no candidate is within the budget ({measure}); {rows[best]['label']} is the most accurate")


def _not_faster(rows: list[dict[str, Any]], inside: list[int], best: int, measure: str) -> str:
    """The plain words when every candidate within the budget is as slow as fp32 or slower:
    what was picked anyway (the smallest file at that accuracy), and the fastest one the
    budget ruled out."""
    row = rows[best]
    text = (f"{NOT_FASTER} ({len(inside)} within the budget: {measure}); {row['label']} is picked, the fastest of "
            f"them (or equally fast and more accurate) at {row['speed_vs_fp32']:.2f}× fp32's speed, for size only")
    outside = [i for i in range(len(rows)) if i not in inside]
    if not outside:
        return text + ". Export fp32 (or fp16) for speed: no int8 setting tried is faster in this runtime."
    other = rows[max(outside, key=lambda i: rows[i]["speed_vs_fp32"])]
    quality = (f"accuracy {other['accuracy']:.2%}" if other.get("accuracy") is not None
               else f"top-1 agreement {(other.get('top1_agreement') or 0):.1%}")
    text += (f"; the fastest candidate outside the budget is {other['label']} at {other['speed_vs_fp32']:.2f}× "
             f"({quality})")
    if other["speed_vs_fp32"] < FASTER:
        return text + ". Export fp32 (or fp16) for speed: no int8 setting tried is faster in this runtime."
    return text + ". Export fp32 (or fp16) for speed, or relax the accuracy budget to take that one."
