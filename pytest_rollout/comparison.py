"""One A/B comparison's result and how a gate acts on it: ``require()`` for a success criterion,
``abort_if_worse()`` for an abort trigger; both record the numbers on the gate first."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pytest_rollout.gate import GateRecord
from pytest_rollout.outcomes import inconclusive
from pytest_rollout.stats import SRM_ALPHA, NonInferiority, SampleRatio, Verdict


@dataclass(frozen=True)
class Comparison:
    """One comparison a gate acts on. ``require()``: a success criterion; ``abort_if_worse()``:
    an abort trigger. Both return ``self`` when the gate passes."""

    kind: str  # "quantile_delta" | "proportion_delta" | "mean_delta" | "srm"
    metric: str  # what was compared, in words
    result: NonInferiority | SampleRatio
    queries: tuple[str, ...]
    min_samples: int
    reference: dict[str, Any] = field(default_factory=dict)  # e.g. Mann-Whitney U, for the report
    gate: GateRecord | None = field(default=None, repr=False, compare=False)
    # evidence span, n, information fraction, n needed and ETA (pytest_rollout.evidence)
    progress: dict[str, Any] = field(default_factory=dict)

    @property
    def verdict(self) -> Verdict:
        if isinstance(self.result, SampleRatio):
            return Verdict.BEYOND if self.result.mismatch else Verdict.WITHIN
        return self.result.verdict

    @property
    def explanation(self) -> str:
        return self.result.explanation

    @property
    def n(self) -> dict[str, int]:
        return dict(self.result.n)

    @property
    def p_value(self) -> float:
        return self.result.p_value

    def _too_few(self) -> bool:
        if isinstance(self.result, SampleRatio):
            return sum(self.result.n.values()) == 0
        return min(self.result.n.values()) < self.min_samples

    def require(self) -> Comparison:
        """Pass only when proven within the margin; fail when proven beyond; otherwise (or below
        the minimum n) inconclusive."""
        self._observe("criterion")
        if self._too_few() or self.verdict is Verdict.UNDECIDED:
            inconclusive(f"{self.metric}: {self.explanation}{self._eta()}")
        if self.verdict is Verdict.BEYOND:
            raise AssertionError(f"{self.metric}: {self.explanation}: {self._advice()}")
        return self

    def abort_if_worse(self) -> Comparison:
        """Fail (roll back) only when proven beyond the margin; inconclusive below the minimum
        n; pass otherwise."""
        if self.gate is not None and self.gate.kind != "abort":
            # Without the marker a proven regression would only HOLD: never roll back silently.
            raise RuntimeError(
                f"{self.gate.nodeid} calls abort_if_worse() but is not marked "
                "@pytest.mark.abort: add the marker so a proven regression is an ABORT, or use "
                "require() for a success criterion"
            )
        self._observe("abort")
        if self._too_few():
            inconclusive(f"{self.metric}: {self.explanation}{self._eta()}")
        if self.verdict is Verdict.BEYOND:
            raise AssertionError(f"{self.metric}: {self.explanation}: {self._advice()}")
        return self

    def _eta(self) -> str:
        """When this HOLD resolves at the current traffic: "n still needed → ETA"."""
        p = self.progress
        if not p or p.get("kind") != "phase":
            return ""
        parts = [f"{p['n']:,} treatment samples {_span(p)}"]
        if p.get("planned_n"):
            t = p.get("information_fraction") or 0.0
            parts.append(f"{t:.0%} of the planned {p['planned_n']:,} ({p['design']})")
        deff = (p.get("design_effect") or {}).get("deff", 1.0)
        if deff > 1.0:
            parts.append(f"counts divided by the measured design effect {deff:.2f}")
        if p.get("n_needed") and p.get("eta"):
            parts.append(
                f"about {p['n_needed']:,} would decide it at {p['rate_per_s']:.3g}/s, by {p['eta']}"
            )
        return "; " + ", ".join(parts)

    def _advice(self) -> str:
        if self.kind == "srm":
            return (
                "fix cohort assignment or logging before trusting any other comparison; "
                "hold the rollout"
            )
        return "hold the canary and investigate the treatment path"

    def _observe(self, role: str) -> None:
        if self.gate is None:
            return
        r = self.result
        if isinstance(r, SampleRatio):
            self.gate.observe(
                metric=self.metric,
                observed=r.chi2,
                threshold=SRM_ALPHA,
                unit="",
                n=r.n,
                p_value=r.p_value,
                explanation=r.explanation,
            )
            return
        signed = {"higher": r.margin, "lower": -r.margin}.get(r.worse, r.margin)
        p = r.p_beyond if role == "abort" else r.p_within
        self.gate.observe(
            metric=self.metric,
            observed=r.estimate,
            threshold=signed,
            unit=r.delta.unit,
            n=r.n,
            p_value=p,
            ci=r.ci,
            explanation=r.explanation,
        )

    def to_dict(self) -> dict[str, Any]:
        """Numbers and queries for the decision record and the report (JSON-friendly)."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "metric": self.metric,
            "verdict": self.verdict.value,
            "n": self.n,
            "p_value": finite_or_none(self.p_value),
            "explanation": self.explanation,
            "queries": list(self.queries),
            "min_samples": self.min_samples,
        }
        r = self.result
        if isinstance(r, SampleRatio):
            out.update(
                chi2=finite_or_none(r.chi2), observed=dict(r.observed), expected=dict(r.expected)
            )
        else:
            d = r.delta
            out.update(
                statistic=d.statistic,
                unit=d.unit,
                estimate=finite_or_none(d.estimate),
                ci=[finite_or_none(d.ci[0]), finite_or_none(d.ci[1])],
                level=d.level,
                margin=r.margin,
                worse=r.worse,
                p_within=r.p_within,
                p_beyond=r.p_beyond,
                n_needed=r.n_needed,
                bucket_limited=r.bucket_limited,
                alpha_per_side=d.alpha,
                sequential=d.sequential,
                groups={
                    name: {
                        "estimate": finite_or_none(g.estimate),
                        "ci": [finite_or_none(g.ci[0]), finite_or_none(g.ci[1])],
                        "n": g.n,
                        "resolution": finite_or_none(g.resolution),
                        "bucket": [finite_or_none(b) for b in g.bucket] if g.bucket else None,
                    }
                    for name, g in (("control", d.control), ("treatment", d.treatment))
                },
            )
        if self.reference:
            out["reference"] = dict(self.reference)
        if self.progress:
            out["evidence"] = dict(self.progress)
        return out


def _span(progress: dict[str, Any]) -> str:
    return f"from {progress['since']} to {progress['end']}"


def finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None
