"""The treatment share over the campaign as a step chart (PNG, base64), decisions marked on it.

matplotlib is imported here, when the page is built, through its object-oriented API only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from pytest_rollout.campaign.events import Event
from pytest_rollout.report.plots import png_base64

DECISION_COLOURS = {"GO": "#1a7f37", "HOLD": "#b26b00", "ABORT": "#c62828"}
LINE_COLOURS = ("#dd8452", "#4c72b0", "#55a868", "#8172b3")


def share_png(
    steps: Mapping[str, Sequence[tuple[float, float]]], decisions: Sequence[Event]
) -> str | None:
    """None when no cohort flag changed (nothing to draw)."""
    drawn = {name: sorted(points) for name, points in steps.items() if points}
    if not drawn:
        return None
    from matplotlib.dates import DateFormatter
    from matplotlib.figure import Figure

    times = [t for points in drawn.values() for t, _ in points]
    times += [d.when for d in decisions if not math.isnan(d.when)]
    end = max(times) + max(60.0, 0.03 * (max(times) - min(times)))
    fig = Figure(figsize=(9, 3.2), dpi=100)
    fig.subplots_adjust(left=0.08, right=0.98, top=0.88, bottom=0.2)
    axes = fig.subplots()
    for colour, (name, points) in zip(LINE_COLOURS * 4, sorted(drawn.items()), strict=False):
        xs = [_num(t) for t, _ in points] + [_num(end)]
        ys = [v for _, v in points] + [points[-1][1]]
        axes.step(xs, ys, where="post", color=colour, linewidth=1.8, label=f"{name} (cohort %)")
    for decision in decisions:
        if math.isnan(decision.when):
            continue
        colour = DECISION_COLOURS.get(decision.decision, "#666666")
        style = "-" if decision.ok else ":"
        axes.axvline(
            _num(decision.when),
            color=colour,
            linestyle=style,
            linewidth=1,
            alpha=0.8,
        )
    axes.set_ylim(-3, 103)
    axes.set_ylabel("treatment share %")
    axes.set_title(
        "treatment share over time; vertical lines: decisions (green GO, amber HOLD, red ABORT)",
        fontsize=9,
        loc="left",
    )
    axes.legend(fontsize=8, loc="upper left")
    axes.grid(alpha=0.3)
    axes.xaxis.set_major_formatter(DateFormatter("%m-%d %H:%M", tz=UTC))  # type: ignore[no-untyped-call]
    axes.set_xlabel("time (UTC)")
    return png_base64(fig)


def _num(t: float) -> float:
    """matplotlib's date number (days since its epoch) of unix seconds ``t``."""
    from matplotlib.dates import date2num

    return float(date2num(datetime.fromtimestamp(t, UTC)))  # type: ignore[no-untyped-call]
