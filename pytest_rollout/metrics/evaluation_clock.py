"""Catch a PromQL backend that answers for an earlier instant than the one asked for.

VictoriaMetrics hides its newest samples (``-search.latencyOffset``, 30 s by default): an instant
query near "now" is evaluated that much earlier, and a range query with a step under
``-search.maxStepForPointsAdjustment`` (1 m) gets its newest points overwritten with an older
value. Both keep the timestamps asked for, and ``time()`` moves with the data, so
``time() - timestamp(x)`` still looks fresh and no staleness check can tell. A regression in the
hidden seconds would read as healthy. ``time()`` itself, asked at the same instant (or over the
same range), shows where the backend really evaluated.
"""

from __future__ import annotations

import math
from typing import Any

from pytest_rollout.instants import rfc3339
from pytest_rollout.metrics.transport import BackendError, PromApi

# How much earlier than asked a backend may evaluate before a run cannot trust it: a
# VictoriaMetrics with -search.latencyOffset=0s still answers up to ~1 s early (coarse clock).
MAX_EVALUATION_SHIFT_S = 5.0
# Sent with every query. Without it VictoriaMetrics moves instant queries near "now" back by its
# latency offset, rounds a range's start and end down to the step (the window moves up to one
# step earlier and ends before the pinned instant), and may answer from a cache filled before
# a backfill. Prometheus, Thanos and Mimir ignore the parameter.
NO_CACHE = {"nocache": "1"}
_FIX = (
    "(VictoriaMetrics: -search.latencyOffset, 30s by default); start it with "
    "-search.latencyOffset=0s, or pin --rollout-at at least {shift:.0f}s earlier"
)


class EvaluationClock:
    """Asks ``time()`` where the backend evaluates: once per run for instant queries, once per
    distinct range for range queries. An answer that is no number (not a PromQL engine)
    leaves the gates' own queries to decide."""

    def __init__(self, api: PromApi, at: float, display_url: str) -> None:
        self._api = api
        self._at = at
        self._url = display_url
        self._instant_error: str | None = None
        self._instant_checked = False
        self._ranges_checked: set[tuple[Any, ...]] = set()

    def check_instant(self) -> None:
        """BackendError when the backend evaluates at the pinned instant minus a hidden span."""
        if self._instant_error is not None:
            raise BackendError(self._instant_error)
        if self._instant_checked:
            return
        raw, _ = self._api.result(
            "/api/v1/query", {"query": "time()", "time": self._at, **NO_CACHE}
        )
        evaluated = _instant_number(raw)
        if evaluated is not None and self._at - evaluated > MAX_EVALUATION_SHIFT_S:
            shift = self._at - evaluated
            self._instant_error = (
                f"{self._url} evaluated the query {shift:.0f}s before the pinned instant "
                f"{rfc3339(self._at)}, so it hides its newest samples and no staleness check "
                f"can tell {_FIX.format(shift=shift)}"
            )
            raise BackendError(self._instant_error)
        self._instant_checked = True

    def check_range(self, params: dict[str, Any]) -> None:
        """BackendError when the backend overwrote points of this range with older values."""
        key = tuple(sorted(params.items()))
        if key in self._ranges_checked:
            return
        raw, _ = self._api.result("/api/v1/query_range", {**params, "query": "time()"})
        for series in raw if isinstance(raw, list) else []:
            points = series.get("values", []) if isinstance(series, dict) else []
            for point in points:
                if not (isinstance(point, list) and len(point) == 2):
                    continue
                t, shift = _number(point[0]), _number(point[0]) - _number(point[1])
                if math.isfinite(shift) and shift > MAX_EVALUATION_SHIFT_S:
                    raise BackendError(
                        f"{self._url} answered the range query's point at {rfc3339(t)} "
                        f"with data from {shift:.0f}s earlier, so it hides its newest samples "
                        f"{_FIX.format(shift=shift)}, or use a step of at least 1m"
                    )
        self._ranges_checked.add(key)


def _instant_number(raw: Any) -> float | None:
    """The number ``time()`` answered: a scalar on Prometheus, a one-sample vector without
    labels on VictoriaMetrics; None for anything else."""
    if isinstance(raw, list) and len(raw) == 1 and isinstance(raw[0], dict):
        if raw[0].get("metric"):
            return None
        raw = raw[0].get("value")
    if isinstance(raw, list) and len(raw) == 2 and not isinstance(raw[0], dict):
        number = _number(raw[1])
        return number if math.isfinite(number) else None
    return None


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
