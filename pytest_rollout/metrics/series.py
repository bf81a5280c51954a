"""Fetch a metric's time series per A/B group for the report's plot."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pytest_rollout.outcomes import Inconclusive

if TYPE_CHECKING:
    from pytest_rollout.metrics.prometheus import PromQuery

MAX_POINTS = 500  # per group: enough for a readable plot, small enough for the JUnit/xdist payload


def fetch_series(
    prom: PromQuery, query: str, group_label: str, window_s: float, step_s: float
) -> dict[str, list[list[float]]]:
    """``{"control": [[t, v], ...], "treatment": [...]}`` over the window ending at the instant.

    ``query`` should keep one series per group (e.g. ``histogram_quantile(0.99, sum by (group,
    le) (rate(...[5m])))``); if several share a group value the first is kept. The step is
    widened to keep at most ``MAX_POINTS`` points. The plot is evidence, not a criterion: a failed
    range query gives ``{}`` (the report says "no series recorded") and never changes the gate's
    outcome. The query is recorded on the gate like any other.
    """
    step = max(step_s, window_s / MAX_POINTS)
    try:
        # Evidence, not a criterion: gaps and no series at all are plotted as they are.
        result = prom.range(query, window_s=window_s, step_s=step, allow_empty=True, allow_nan=True)
    except Inconclusive:
        return {}
    out: dict[str, list[list[float]]] = {}
    for series in result:
        group = series.labels.get(group_label)
        if group is None or group in out:
            continue
        out[group] = [[float(t), float(v)] for t, v in series.points if math.isfinite(v)]
    return out
