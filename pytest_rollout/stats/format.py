"""Numbers in words for explanations: latency in seconds is shown in milliseconds."""

from __future__ import annotations

import math


def fmt(value: float, unit: str, *, signed: bool = False, delta: bool = False) -> str:
    """``0.0016, "s"`` -> ``1.6 ms``; rates as % (differences of rates, ``delta``, as percentage
    points); others with 3 significant digits."""
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return ("+" if value > 0 else "-") + "inf" if signed or value < 0 else "inf"
    sign = "+" if signed and value > 0 else ""
    if unit == "s":
        return f"{sign}{value * 1000:.1f} ms"
    if unit == "ratio":
        return f"{sign}{value * 100:.3g} pp" if signed or delta else f"{value * 100:.3g} %"
    text = f"{sign}{value:.3g}"
    return f"{text} {unit}" if unit else text


def quantile_name(q: float) -> str:
    """0.99 -> p99, 0.5 -> p50, 0.999 -> p99.9."""
    pct = q * 100
    return f"p{pct:g}" if pct != int(pct) else f"p{int(pct)}"
