"""The metric over the window, control against treatment, with the threshold drawn (PNG, base64).

matplotlib is imported here, when a report with a plot is written, and only through its
object-oriented API (``Figure``): no pyplot, no global backend switch.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

CONTROL, TREATMENT = "control", "treatment"
COLOURS = {CONTROL: "#4c72b0", TREATMENT: "#dd8452"}
OTHER_COLOURS = ("#55a868", "#8172b3", "#937860", "#da8bc3")
THRESHOLD_COLOUR = "#c62828"


def unit_scale(unit: str) -> tuple[float, str]:
    """Latency in seconds is drawn in milliseconds, ratios in percent (as the text shows them)."""
    if unit == "s":
        return 1000.0, "ms"
    if unit == "ratio":
        return 100.0, "%"
    return 1.0, unit


def _clean(points: Sequence[Sequence[Any]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for point in points:
        if len(point) != 2 or point[0] is None or point[1] is None:
            continue
        t, v = float(point[0]), float(point[1])
        if math.isfinite(t) and math.isfinite(v):
            out.append((t, v))
    return sorted(out)


def threshold_target(series: Mapping[str, Any], extra: Mapping[str, Any]) -> str:
    """What the threshold bounds: the treatment-control difference, the value itself, or neither.

    A gate says so with ``gate.extra["threshold_on"] = "delta" | "value" | "none"``; by default a
    control+treatment pair means a difference (the A/B margins), a single series the value.
    """
    chosen = extra.get("threshold_on")
    if chosen in ("delta", "value", "none"):
        return str(chosen)
    return "delta" if CONTROL in series and TREATMENT in series else "value"


def render_png(
    series: Mapping[str, Sequence[Sequence[Any]]],
    *,
    metric: str,
    unit: str,
    threshold: float | None,
    threshold_on: str,
) -> str | None:
    """Base64 PNG of the series (None when there is nothing to draw)."""
    cleaned = {str(name): _clean(points) for name, points in series.items()}
    cleaned = {name: points for name, points in cleaned.items() if points}
    if not cleaned:
        return None

    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    factor, shown_unit = unit_scale(unit)
    delta = _delta(cleaned) if threshold_on == "delta" else []
    rows = 2 if delta else 1
    height = 2.6 * rows + 0.6
    fig = Figure(figsize=(7.5, height), dpi=100)
    # Fixed margins (inches over the figure's height), not layout="constrained": the layout
    # engine costs about as much as the drawing (benchmarks/results/day7_gate_speed.json).
    fig.subplots_adjust(
        left=0.1, right=0.98, top=1 - 0.3 / height, bottom=0.55 / height, hspace=0.15
    )
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)[:, 0]

    top = axes[0]
    others = iter(OTHER_COLOURS)
    for name, points in cleaned.items():
        colour = COLOURS.get(name) or next(others, "#333333")
        top.plot(
            [_when(t) for t, _ in points],
            [v * factor for _, v in points],
            label=name,
            color=colour,
            linewidth=1.4,
        )
    if threshold is not None and threshold_on == "value":
        top.axhline(
            threshold * factor,
            color=THRESHOLD_COLOUR,
            linestyle="--",
            linewidth=1.2,
            label=f"threshold {threshold * factor:g} {shown_unit}".rstrip(),
        )
    top.set_title(_short(metric), fontsize=10, loc="left")
    top.set_ylabel(shown_unit or "value")
    top.legend(fontsize=8, loc="upper left")  # "best" searches the data: slow
    top.grid(alpha=0.3)

    if delta:
        bottom = axes[1]
        bottom.plot(
            [_when(t) for t, _ in delta],
            [v * factor for _, v in delta],
            color="#333333",
            linewidth=1.2,
            label="treatment − control",
        )
        bottom.axhline(0.0, color="#999999", linewidth=0.8)
        if threshold is not None:
            bottom.axhline(
                threshold * factor,
                color=THRESHOLD_COLOUR,
                linestyle="--",
                linewidth=1.2,
                label=f"threshold {threshold * factor:+g} {shown_unit}".rstrip(),
            )
        bottom.set_ylabel(f"difference {shown_unit}".rstrip())
        bottom.legend(fontsize=8, loc="upper left")
        bottom.grid(alpha=0.3)
    formatter = DateFormatter("%m-%d %H:%M", tz=UTC)  # type: ignore[no-untyped-call]
    axes[-1].xaxis.set_major_formatter(formatter)
    axes[-1].set_xlabel("time (UTC)")
    return png_base64(fig)


def png_base64(fig: Any) -> str:
    """A matplotlib figure as base64 PNG, for a data: URI (the reports are self-contained)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _delta(series: Mapping[str, list[tuple[float, float]]]) -> list[tuple[float, float]]:
    """Treatment minus control at the timestamps both have (range queries share their steps)."""
    if CONTROL not in series or TREATMENT not in series:
        return []
    control = dict(series[CONTROL])
    return [(t, v - control[t]) for t, v in series[TREATMENT] if t in control]


def _when(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _short(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
