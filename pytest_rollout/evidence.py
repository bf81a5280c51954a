"""Which data an A/B comparison judges, and at what level: the phase since it began, or a window.

A phase lasts days and its gates are re-run during the hold. With ``evidence = "phase"`` (the
default) every comparison counts everything since the phase start (``increase(x[<at - since>s])``,
which Prometheus and VictoriaMetrics correct across counter resets), so n grows with every look
and the looks are nested. The level of each look then comes from a group-sequential design
(docs/statistics.md, "Looks during a phase"):

- a success criterion ("within" → GO) spends alpha on the information fraction
  ``t = n / planned n`` with the O'Brien-Fleming-type boundary (stats/spending.py). The planned
  n is ``planned_n``, or the phase's ``duration`` times the observed treatment rate; after the
  planned end the criterion is the final analysis over [since, since + duration], the same on
  every later run, so no look spends alpha the plan does not have;
- an abort trigger ("beyond" → ABORT) must stay open-ended and react fast: it uses the
  confidence sequence (stats/sequential.py), valid over any number of looks, tuned at
  ``min_samples``; so does a criterion of a phase without a plan.

``evidence = "window"`` (or an explicit ``--rollout-window``) keeps the sliding window: each run
sees only the last ``window``, with the phase's ``sequential`` setting, and the record says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pytest_rollout.durations import format_duration
from pytest_rollout.instants import rfc3339
from pytest_rollout.outcomes import inconclusive

# A per-look level below this cannot prove anything with any data a phase holds; the spending
# function's level at tiny t underflows to 0, which the interval code does not take.
MIN_LOOK_ALPHA = 1e-12


@dataclass(frozen=True)
class Look:
    """The level one comparison is judged at, and what the record says about it."""

    alpha: float  # per side
    sequential: bool  # confidence sequence (True) or a fixed/spent per-look level (False)
    tuning_n: float
    design: str  # "obf" | "confidence-sequence" | "fixed" (window)
    information_fraction: float | None = None
    planned_n: float | None = None
    # per-side level at a hypothetical ``scale`` x the data (for "n still needed")
    alpha_at: Callable[[float], float] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Evidence:
    """The span an A/B gate's counts cover and how its looks are judged."""

    kind: str  # "phase" | "window"
    at: float
    window_s: float
    since: float | None = None
    since_source: str = "none"
    since_detail: str = ""
    problem: str | None = None  # why the phase start is unknown (every A/B gate inconclusive)
    duration_s: float | None = None
    planned_n: int | None = None
    role: str = "criterion"  # "criterion" | "abort"
    explicit_window: bool = False  # --rollout-window was given

    # -- the span ------------------------------------------------------------------------
    def require_start(self, what: str) -> None:
        if self.kind == "phase" and (self.since is None or self.problem):
            inconclusive(
                f"{what}: {self.problem or 'the phase start is unknown'}; the A/B evidence of a "
                "phase counts from its start and never falls back to a sliding window"
            )

    @property
    def end(self) -> float:
        """Where the counts end: ``at``, or the planned end for a criterion past its plan."""
        if self.final_analysis:
            assert self.since is not None and self.duration_s is not None
            return self.since + self.duration_s
        return self.at

    @property
    def final_analysis(self) -> bool:
        return (
            self.kind == "phase"
            and self.role == "criterion"
            and self.since is not None
            and self.duration_s is not None
            and self.planned_n is None
            and self.at > self.since + self.duration_s
        )

    @property
    def elapsed_s(self) -> float:
        if self.kind == "window" or self.since is None:
            return self.window_s
        return max(self.end - self.since, 0.0)

    def range_selector(self) -> str:
        """``[range] offset`` for ``increase()``: the span as PromQL (whole seconds, >= 1 s)."""
        if self.kind == "window":
            return f"[{format_duration(self.window_s)}]"
        seconds = max(1, int(round(self.elapsed_s)))
        offset = int(round(self.at - self.end))
        return f"[{seconds}s]" + (f" offset {offset}s" if offset > 0 else "")

    def span_text(self) -> str:
        if self.kind == "window":
            return f"in the last {format_duration(self.window_s)}"
        start = rfc3339(self.since) if self.since is not None else "?"
        if self.final_analysis:
            return f"in the planned phase {start} to {rfc3339(self.end)}"
        return f"since the phase start {start} ({self.since_source})"

    # -- the level of this look -------------------------------------------------------------
    def look(
        self,
        n_treatment: float,
        alpha: float,
        sequential: bool,
        min_samples: int,
        tuning_n: int | None = None,
    ) -> Look:
        """The per-side level at which this comparison is judged, given its treatment n."""
        tuning = float(tuning_n or max(min_samples, 100))
        if self.kind == "window":
            design = "confidence-sequence" if sequential else "fixed"
            return Look(alpha, sequential, tuning, design)
        planned = self.planned(n_treatment)
        t = n_treatment / planned if planned else None
        if self.role == "criterion" and planned and t is not None:

            def alpha_at(scale: float) -> float:
                return max(_obf(alpha, t * scale), MIN_LOOK_ALPHA)

            return Look(alpha_at(1.0), False, tuning, "obf", t, planned, alpha_at)
        if self.role == "criterion" and planned:
            tuning = planned  # open-ended criterion: tightest at the planned n
        return Look(alpha, True, tuning, "confidence-sequence", t, planned)

    def planned(self, n_treatment: float) -> float | None:
        """The plan's treatment n: ``planned_n``, else duration x the observed rate."""
        if self.planned_n:
            return float(self.planned_n)
        if self.duration_s and self.elapsed_s > 0 and n_treatment > 0:
            return n_treatment * self.duration_s / self.elapsed_s
        return None

    def progress(self, n_treatment: float, n_needed: float | None) -> dict[str, Any]:
        """n, information fraction and "n still needed → ETA" at the current treatment rate."""
        rate = n_treatment / self.elapsed_s if self.elapsed_s > 0 else 0.0
        out: dict[str, Any] = {
            "kind": self.kind,
            "since": rfc3339(self.since) if self.since is not None else None,
            "since_source": self.since_source if self.kind == "phase" else None,
            "end": rfc3339(self.end),
            "n": int(n_treatment),
            "rate_per_s": rate,
            "n_needed": int(n_needed) if n_needed is not None else None,
            "eta": None,
        }
        if n_needed is not None and rate > 0 and not self.final_analysis:
            out["eta"] = rfc3339(self.at + max(n_needed - n_treatment, 0.0) / rate)
        return out


def _obf(alpha: float, t: float) -> float:
    from pytest_rollout.stats.spending import obf_look_alpha

    return obf_look_alpha(alpha, t) if math.isfinite(t) else 0.0
