"""Non-inferiority and equivalence decisions from a delta's interval, with p-values and n needed.

A criterion passes only when the interval *proves* treatment is within the margin; an abort
trigger fires only when it proves treatment is beyond it. Anything else is undecided, never pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from pytest_rollout.stats.format import fmt
from pytest_rollout.stats.power import required_sample_size
from pytest_rollout.stats.result import Delta, Verdict

WORSE = ("higher", "lower", "either")


@dataclass(frozen=True)
class NonInferiority:
    """A comparison's verdict against a margin; ``p_value`` is the one the verdict rests on."""

    delta: Delta
    margin: float
    worse: str  # "higher" | "lower" | "either" (two-sided equivalence)
    verdict: Verdict
    p_within: float  # H0: worse than the margin; small p proves "within"
    p_beyond: float  # H0: no worse than the margin; small p proves "beyond"
    min_n: int
    n_needed: dict[str, int] | None  # per-group n to prove "within" at true delta 0 with `power`
    explanation: str

    @property
    def estimate(self) -> float:
        return self.delta.estimate

    @property
    def ci(self) -> tuple[float, float]:
        return self.delta.ci

    @property
    def n(self) -> dict[str, int]:
        return self.delta.n

    @property
    def p_value(self) -> float:
        return self.p_beyond if self.verdict is Verdict.BEYOND else self.p_within


def decide(
    delta_at: Callable[[float], Delta],
    margin: float,
    *,
    worse: str = "higher",
    alpha: float = 0.025,
    min_n: int = 0,
    power: float = 0.8,
) -> NonInferiority:
    """Verdict of ``delta_at(alpha)`` against ``margin`` (> 0, in the delta's unit).

    ``delta_at`` recomputes the delta's interval at another per-side alpha; the p-values are the
    smallest alpha at which the interval would prove the claim, so they agree with the verdict.
    """
    if worse not in WORSE:
        raise ValueError(f"worse must be one of {WORSE}, got {worse!r}")
    if not margin >= 0 or math.isinf(margin):
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")
    delta = delta_at(alpha)
    lo, hi = delta.ci
    within = _proves_within(lo, hi, margin, worse)
    beyond = _proves_beyond(lo, hi, margin, worse)
    small = min(delta.control.n, delta.treatment.n) < min_n
    if small or not (within or beyond):
        verdict = Verdict.UNDECIDED
    else:
        verdict = Verdict.WITHIN if within else Verdict.BEYOND
    p_within = _p_value(delta_at, lambda d: _proves_within(*d.ci, margin, worse))
    p_beyond = _p_value(delta_at, lambda d: _proves_beyond(*d.ci, margin, worse))
    n_needed = None
    if verdict is Verdict.UNDECIDED:
        n_needed = _n_needed(delta, margin, alpha, power, worse)
    if n_needed is not None and min_n:
        n_needed = {g: max(v, min_n) for g, v in n_needed.items()}
    return NonInferiority(
        delta=delta, margin=margin, worse=worse, verdict=verdict, p_within=p_within,
        p_beyond=p_beyond, min_n=min_n, n_needed=n_needed,
        explanation=_explain(delta, margin, worse, verdict, small, min_n, n_needed),
    )


def _proves_within(lo: float, hi: float, margin: float, worse: str) -> bool:
    if worse == "higher":
        return hi < margin
    if worse == "lower":
        return lo > -margin
    return -margin < lo and hi < margin


def _proves_beyond(lo: float, hi: float, margin: float, worse: str) -> bool:
    if worse == "higher":
        return lo > margin
    if worse == "lower":
        return hi < -margin
    return lo > margin or hi < -margin


def _p_value(delta_at: Callable[[float], Delta], proven: Callable[[Delta], bool]) -> float:
    """Smallest per-side alpha at which ``proven`` holds (bisection on log alpha); 1 if none."""
    lo, hi = math.log(1e-12), math.log(0.4999)
    if not proven(delta_at(math.exp(hi))):
        return 1.0
    if proven(delta_at(math.exp(lo))):
        return 1e-12
    for _ in range(30):
        mid = (lo + hi) / 2.0
        if proven(delta_at(math.exp(mid))):
            hi = mid
        else:
            lo = mid
    return math.exp(hi)


def _n_needed(
    delta: Delta, margin: float, alpha: float, power: float, worse: str
) -> dict[str, int] | None:
    sd_c, sd_t = delta.unit_sd
    if not (math.isfinite(sd_c) and math.isfinite(sd_t)) or margin <= 0:
        return None
    ratio = delta.control.n / max(delta.treatment.n, 1)
    size = required_sample_size(
        sd_c, sd_t, margin, alpha=alpha, power=power,
        ratio=max(ratio, 1e-6), sequential=delta.sequential, tuning_n=delta.tuning_n,
        two_sided_equivalence=worse == "either",
    )
    return {"control": size.n_control, "treatment": size.n_treatment}


def _explain(
    delta: Delta, margin: float, worse: str, verdict: Verdict, small: bool, min_n: int,
    n_needed: dict[str, int] | None,
) -> str:
    u = delta.unit
    est, (lo, hi) = delta.estimate, delta.ci
    if est > 0:
        direction = f"{fmt(est, u, delta=True)} higher than"
    elif est < 0:
        direction = f"{fmt(-est, u, delta=True)} lower than"
    else:
        direction = "the same as"
    kind = "always-valid " if delta.sequential else ""
    level = f"{delta.level * 100:g} %"
    bound = {"higher": f"+{fmt(margin, u, delta=True)}", "lower": f"-{fmt(margin, u, delta=True)}"}.get(
        worse, f"+-{fmt(margin, u, delta=True)}"
    )
    text = (
        f"treatment {delta.statistic} is {direction} control, {level} {kind}interval "
        f"{fmt(lo, u, signed=True)} to {fmt(hi, u, signed=True)}"
    )
    if small:
        return (
            f"{text}; undecided: {delta.treatment.n} treatment and {delta.control.n} control "
            f"samples, need {min_n} per group"
        )
    if verdict is Verdict.WITHIN:
        return f"{text}, within the {bound} margin"
    if verdict is Verdict.BEYOND:
        return f"{text}, beyond the {bound} margin"
    need = ""
    if n_needed is not None:
        need = (
            f"; about {n_needed['treatment']} treatment / {n_needed['control']} control samples "
            f"would decide it at {delta.level * 100:g} % if there is no real difference"
        )
    return f"{text}, undecided against the {bound} margin{need}"
