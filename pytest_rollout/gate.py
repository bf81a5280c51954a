"""What one gate observed: the numbers and queries that go into the decision record and report."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class QueryRecord:
    """One query as sent to the metrics backend."""

    query: str
    at: str  # evaluation instant, RFC 3339
    duration_s: float
    summary: str  # short description of the result ("1 series, 0.0123", "empty", "HTTP 500")
    range: dict[str, Any] | None = None  # {"start": ..., "end": ..., "step": ...} for range queries


@dataclass
class GateRecord:
    """Everything a gate recorded about itself.

    Gates fill it through the ``gate`` fixture (``gate.observe(...)``); the ``prom`` and ``ab``
    fixtures add their queries and comparisons automatically.
    """

    nodeid: str
    kind: str = "criterion"  # "criterion" | "abort"
    phase: str | None = None
    metric: str | None = None
    observed: float | None = None
    threshold: float | None = None
    unit: str = ""
    n: dict[str, int] | None = None
    p_value: float | None = None
    ci: tuple[float, float] | None = None
    explanation: str | None = None  # the statistics in words, for the report
    queries: list[QueryRecord] = field(default_factory=list)
    # Time series for the report's plot: {"control": [[t, v], ...], "treatment": [...]}.
    series: dict[str, list[list[float]]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def observe(
        self,
        *,
        metric: str,
        observed: float | None,
        threshold: float | None = None,
        unit: str = "",
        n: dict[str, int] | None = None,
        p_value: float | None = None,
        ci: tuple[float, float] | None = None,
        explanation: str | None = None,
    ) -> None:
        """Record the headline numbers of this gate (the last call wins)."""
        self.metric = metric
        self.observed = observed
        self.threshold = threshold
        self.unit = unit
        self.n = dict(n) if n is not None else None
        self.p_value = p_value
        self.ci = (float(ci[0]), float(ci[1])) if ci is not None else None
        self.explanation = explanation

    def add_query(self, record: QueryRecord) -> None:
        self.queries.append(record)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (NaN and infinities become None, tuples become lists)."""
        safe: dict[str, Any] = json_safe(asdict(self))
        return safe


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None and tuples as lists, ready for strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
