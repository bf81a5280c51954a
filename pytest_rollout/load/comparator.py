"""The ``baseline`` fixture: judge a gate's window against a saved baseline (baseline.py)."""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pytest_rollout.gate import GateRecord
from pytest_rollout.load.baseline import (
    DEFAULT_MARGIN,
    Comparison,
    Snapshot,
    capture,
    compare,
    current_spec,
)
from pytest_rollout.metrics.prometheus import PromQuery
from pytest_rollout.outcomes import inconclusive


class BaselineComparator:
    """The ``baseline`` fixture: judge a gate's window against a saved baseline.

    ``prom`` is the gate's ``PromQuery`` (its queries land in the gate's record); the window ends
    at the run's pinned instant.  Example::

        def test_latency_within_5_percent_of_baseline(baseline):
            baseline.check("baselines/phase0.json")
    """

    def __init__(
        self, prom: PromQuery, gate: GateRecord | None = None, default_path: Path | None = None
    ) -> None:
        self.prom = prom
        self.gate = gate if gate is not None else prom.gate
        self.default_path = default_path

    def load(self, path: Path | str | None = None) -> Snapshot:
        chosen = Path(path) if path is not None else self.default_path
        if chosen is None:
            inconclusive("no baseline file given (pass a path or configure one)")
        try:
            return Snapshot.load(chosen)
        except ValueError as exc:
            inconclusive(str(exc))

    def compare(
        self,
        path: Path | str | None = None,
        *,
        window_s: float | None = None,
        selector: str | None = None,
        latency_selector: str | None = None,
        margin: float = DEFAULT_MARGIN,
    ) -> Comparison:
        base = self.load(path)
        spec = current_spec(base.spec, window_s, selector, latency_selector)
        return compare(base, capture(self.prom, spec), margin=margin)

    def check(
        self,
        path: Path | str | None = None,
        *,
        metrics: Collection[str] | None = None,
        **kwargs: Any,
    ) -> Comparison:
        """Compare and end the gate: AssertionError when a row fails, inconclusive when a row
        cannot be decided; the worst row's numbers and the whole table go into the record.

        ``metrics`` limits the criteria to some rows ("p50 latency", "p99 latency", "RSS",
        "CPU"), so that one gate can hold each resource to its own margin."""
        result = self.compare(path, **kwargs)
        criteria = [
            r
            for r in result.rows
            if r.limit_pct is not None and (metrics is None or r.metric in metrics)
        ]
        if not criteria:
            known = ", ".join(r.metric for r in result.rows if r.limit_pct is not None)
            raise ValueError(f"no baseline rows named {sorted(metrics or [])}; known: {known}")
        order = {"fail": 0, "inconclusive": 1, "pass": 2}
        worst = min(criteria, key=lambda r: (order[r.outcome], -r.ci_pct[1]))
        if self.gate is not None:
            self.gate.observe(
                metric=f"{worst.metric} vs baseline",
                observed=worst.delta_pct,
                threshold=worst.limit_pct,
                unit="%",
                n=worst.n,
                p_value=worst.p_value,
                ci=worst.ci_pct if all(map(math.isfinite, worst.ci_pct)) else None,
                explanation=worst.explanation,
            )
            self.gate.extra["baseline_comparison"] = result.to_dict()
            self.gate.extra["baseline_table"] = result.table()
        if worst.outcome == "fail":
            raise AssertionError(
                f"{worst.metric} regressed {worst.delta_pct:+.1f} % against the baseline "
                f"(interval {worst.ci_pct[0]:+.1f} .. {worst.ci_pct[1]:+.1f} %, limit "
                f"+{worst.limit_pct:g} %): {worst.explanation}"
            )
        if worst.outcome == "inconclusive":
            inconclusive(f"{worst.metric} vs baseline undecided: {worst.explanation}")
        return result
