"""Non-inferiority and equivalence decisions from a delta's interval, with p-values and n needed.

A criterion passes only when the interval *proves* treatment is within the margin; an abort
trigger fires only when it proves treatment is beyond it. Anything else is undecided, never pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from pytest_rollout.stats.format import fmt
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


DeltaAt = Callable[[float, float], Delta]  # (alpha per side, sample-size scale) -> Delta


def decide(
    delta_at: DeltaAt,
    margin: float,
    *,
    worse: str = "higher",
    alpha: float = 0.025,
    min_n: int = 0,
    power: float = 0.8,
    alpha_at: Callable[[float], float] | None = None,
) -> NonInferiority:
    """Verdict of ``delta_at(alpha, 1.0)`` against ``margin`` (>= 0, in the delta's unit).

    ``delta_at`` recomputes the delta at another per-side alpha, and with every count scaled by a
    factor (the same data, more of it). The p-values are the smallest alpha at which the interval
    would prove the claim, so they agree with the verdict. The n needed comes from the interval
    the scaled data would give, so it reflects skewed tails, bucket widths and sequential
    multipliers, not only a normal approximation. ``alpha_at(scale)`` is the per-side level a
    look with ``scale`` times the data would have (group-sequential designs spend more alpha
    later); without it the n needed is computed at ``alpha``.
    """
    if worse not in WORSE:
        raise ValueError(f"worse must be one of {WORSE}, got {worse!r}")
    if not margin >= 0 or math.isinf(margin):
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")
    delta = delta_at(alpha, 1.0)
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
        n_needed = _n_needed(delta_at, delta, margin, alpha_at or (lambda _: alpha), power, worse)
    if small:
        n_needed = {g: max(v, min_n) for g, v in (n_needed or delta.n).items()}
    elif n_needed is not None and min_n:
        n_needed = {g: max(v, min_n) for g, v in n_needed.items()}
    return NonInferiority(
        delta=delta,
        margin=margin,
        worse=worse,
        verdict=verdict,
        p_within=p_within,
        p_beyond=p_beyond,
        min_n=min_n,
        n_needed=n_needed,
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


def _p_value(delta_at: DeltaAt, proven: Callable[[Delta], bool]) -> float:
    """Smallest per-side alpha at which ``proven`` holds (bisection on log alpha); 1 if none."""
    lo, hi = math.log(1e-12), math.log(0.4999)
    if not proven(delta_at(math.exp(hi), 1.0)):
        return 1.0
    if proven(delta_at(math.exp(lo), 1.0)):
        return 1e-12
    for _ in range(30):
        mid = (lo + hi) / 2.0
        if proven(delta_at(math.exp(mid), 1.0)):
            hi = mid
        else:
            lo = mid
    return math.exp(hi)


def detectable_distance(delta: Delta, power: float = 0.8) -> tuple[float, float]:
    """How far (down, up) the true delta must sit from a bound for this much data to prove it
    with ``power``: the interval's half-width on that side plus z_power standard errors.

    E.g. with ``worse="higher"`` a margin M is proven when the true delta is <= M - up, and a
    regression is proven beyond 0 when it is >= down.
    """
    from scipy.stats import norm

    sd_c, sd_t = delta.unit_sd
    se = math.hypot(
        sd_c / math.sqrt(max(delta.control.n, 1)), sd_t / math.sqrt(max(delta.treatment.n, 1))
    )
    se_lo, se_hi = delta.bound_sd if delta.bound_sd is not None else (se, se)
    z = float(norm.isf(1.0 - power))
    lo, hi = delta.ci
    return (delta.estimate - lo + z * se_lo, hi - delta.estimate + z * se_hi)


def _n_needed(
    delta_at: DeltaAt,
    delta: Delta,
    margin: float,
    alpha_at: Callable[[float], float],
    power: float,
    worse: str,
) -> dict[str, int] | None:
    """Per-group n at which, if the true delta were 0, the verdict would be "within" with
    ``power`` (for equivalence both bounds must clear, so each side gets half the miss rate)."""
    if margin <= 0 or not all(math.isfinite(v) for v in delta.unit_sd):
        return None
    side_power = 1.0 - (1.0 - power) / 2.0 if worse == "either" else power

    def enough(scale: float) -> bool:
        down, up = detectable_distance(delta_at(alpha_at(scale), scale), side_power)
        need = {"higher": up, "lower": down}.get(worse, max(up, down))
        return need <= margin

    lo, hi = 0.0, math.log(1e6)
    if enough(1.0):
        return None  # enough data already: undecided only because the estimate is near the margin
    if not enough(math.exp(hi)):
        return None
    for _ in range(25):
        mid = (lo + hi) / 2.0
        if enough(math.exp(mid)):
            hi = mid
        else:
            lo = mid
    scale = math.exp(hi)
    return {
        "control": math.ceil(delta.control.n * scale),
        "treatment": math.ceil(delta.treatment.n * scale),
    }


def _explain(
    delta: Delta,
    margin: float,
    worse: str,
    verdict: Verdict,
    small: bool,
    min_n: int,
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
    shown = fmt(margin, u, delta=True)
    bound = {"higher": f"+{shown}", "lower": f"-{shown}"}.get(worse, f"+-{shown}")
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
