"""Human-readable numbers shared by the CLI table and the window (1.2 M, 4.8 MB, 0.3 GFLOPs)."""

from __future__ import annotations

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def clip(text: str, limit: int) -> str:
    """At most `limit` characters, the end replaced by '…' (messages, table cells)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip_left(text: str, limit: int) -> str:
    """At most `limit` characters, the start replaced by '…' (paths: the file name survives)."""
    return text if len(text) <= limit else "…" + text[-(limit - 1):]


def _scaled(value: float) -> tuple[float, str]:
    for factor, prefix in _SI:
        if abs(value) >= factor:
            return value / factor, prefix
    return float(value), ""


def _short(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def format_count(n: float) -> str:
    """Parameter counts: 22.7 M, 640, 1.2 k."""
    if n == 0:
        return "0"
    value, prefix = _scaled(n)
    return f"{_short(value)} {prefix}".rstrip() if prefix else f"{int(n)}"


def format_bytes(n: float) -> str:
    """Decimal SI bytes (1 MB = 10^6 B), the unit file managers and model cards use."""
    value, prefix = _scaled(n)
    return f"{_short(value)} {prefix}B" if prefix else f"{int(n)} B"


def format_flops(n: float) -> str:
    """FLOPs always in GFLOPs/MFLOPs/kFLOPs so columns compare at a glance."""
    if n == 0:
        return "0"
    value, prefix = _scaled(n)
    return f"{_short(value)} {prefix}FLOPs"


def format_percent(fraction: float) -> str:
    return f"{100.0 * fraction:.1f}%"


def speed_text(latency: dict | None) -> str:
    """'same speed' / '1.4× faster' / '1.3× slower' for headlines; '' when not measured."""
    if not latency:
        return ""
    if latency.get("same_speed"):
        return "same speed"
    speedup = float(latency["speedup"])
    return f"{speedup:.1f}× faster" if speedup > 1 else f"{1 / speedup:.1f}× slower"


def format_duration(seconds: float) -> str:
    """Elapsed or remaining time as a clock reads it: 0:07, 12:05, 1:02:03."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def eta_seconds(first: tuple[float, int], now: tuple[float, int], total: int) -> float | None:
    """Seconds left at the rate measured since `first` = (time, step); None until a rate exists."""
    (t0, s0), (t1, s1) = first, now
    if s1 <= s0 or t1 <= t0:
        return None
    return (total - s1) * (t1 - t0) / (s1 - s0)
