"""Non-inferiority and equivalence decisions from a delta's interval, with p-values and n needed.

A criterion passes only when the interval *proves* treatment is within the margin; an abort
trigger fires only when it proves treatment is beyond it. Anything else is undecided, never pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

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
    # Undecided, and no n can decide it: the buckets holding the estimates are too wide for the
    # margin (even at infinite n each bound stays at its bucket's outer edge).
    bucket_limited: bool = False

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
FloatArray = npt.NDArray[np.float64]
# (alpha per side, sample-size scale) -> (lower, upper) bounds of simulated comparisons with no
# real difference: lets n_needed search on the exact interval instead of a normal approximation.
NullBoundsAt = Callable[[float, float], tuple[FloatArray, FloatArray]]


def decide(
    delta_at: DeltaAt,
    margin: float,
    *,
    worse: str = "higher",
    alpha: float = 0.025,
    min_n: int = 0,
    power: float = 0.8,
    alpha_at: Callable[[float], float] | None = None,
    null_bounds: NullBoundsAt | None = None,
) -> NonInferiority:
    """Verdict of ``delta_at(alpha, 1.0)`` against ``margin`` (>= 0, in the delta's unit).

    ``delta_at`` recomputes the delta at another per-side alpha, and with every count scaled by a
    factor (the same data, more of it). The p-values are the smallest alpha at which the interval
    would prove the claim, so they agree with the verdict. The n needed comes from the interval
    the scaled data would give, so it reflects skewed tails, bucket widths and sequential
    multipliers, not only a normal approximation; with ``null_bounds`` it is the n at which
    simulated comparisons with no real difference prove "within" with ``power``.
    ``alpha_at(scale)`` is the per-side level a look with ``scale`` times the data would have
    (group-sequential designs spend more alpha later); without it the n needed is at ``alpha``.

    ``bucket_limited``: undecided, the interval at infinite n (each bound at the outer edge of
    the bucket holding its group's estimate) still proves nothing, and with no real difference
    no n proves "within" either; n_needed is then None and the explanation names the buckets to
    add.
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
    limit = _limit_ci(delta)
    n_needed, unreachable = None, False
    if verdict is Verdict.UNDECIDED:
        n_needed, unreachable = _n_needed(
            delta_at, delta, margin, alpha_at or (lambda _: alpha), power, worse, null_bounds
        )
    # Undecidable: neither these estimates nor a world with no real difference can be decided at
    # any n, because the bounds stop at the outer edges of the buckets holding the quantiles.
    bucket_limited = (
        unreachable
        and limit is not None
        and not _proves_within(*limit, margin, worse)
        and not _proves_beyond(*limit, margin, worse)
    )
    if small:
        n_needed = {g: max(v, min_n) for g, v in (n_needed or delta.n).items()}
    elif n_needed is not None and min_n:
        n_needed = {g: max(v, min_n) for g, v in n_needed.items()}
    if bucket_limited:
        n_needed = None  # more data cannot help
    return NonInferiority(
        delta=delta,
        margin=margin,
        worse=worse,
        verdict=verdict,
        p_within=p_within,
        p_beyond=p_beyond,
        min_n=min_n,
        n_needed=n_needed,
        explanation=_explain(delta, margin, worse, verdict, small, min_n, n_needed)
        + (_bucket_advice(delta, margin) if bucket_limited else ""),
        bucket_limited=bucket_limited,
    )


def _limit_ci(delta: Delta) -> tuple[float, float] | None:
    """The delta's interval as n grows without bound with these estimates: each group's bounds
    reach the edges of the bucket holding its estimate, combined as the interval combines them."""
    c, t = delta.control.bucket, delta.treatment.bucket
    if c is None or t is None:
        return None
    qc, qt = delta.control.estimate, delta.treatment.estimate
    d = qt - qc
    return (d - math.hypot(qt - t[0], c[1] - qc), d + math.hypot(t[1] - qt, qc - c[0]))


def _bucket_advice(delta: Delta, margin: float) -> str:
    c, t = delta.control.bucket, delta.treatment.bucket
    assert c is not None and t is not None  # bucket_limited implies both
    lo, hi = min(c[0], t[0]), max(c[1], t[1])
    u = delta.unit
    top = "+Inf" if math.isinf(hi) else fmt(hi, u)
    return (
        f"; undecidable with these buckets (no amount of data helps): the {delta.statistic} of "
        f"both groups lies in buckets between {fmt(lo, u)} and {top}; add le buckets there at "
        f"most {fmt(margin / 2.0, u)} apart (half the {fmt(margin, u)} margin)"
    )


def _proves_within(lo: float, hi: float, margin: float, worse: str) -> bool:
    if worse == "higher":
        return hi < margin
    if worse == "lower":
        return lo > -margin
    return -margin < lo and hi < margin


def _within_each(lo: FloatArray, hi: FloatArray, margin: float, worse: str) -> FloatArray:
    """``_proves_within`` for arrays of bounds."""
    if worse == "higher":
        return np.asarray(hi < margin, dtype=np.float64)
    if worse == "lower":
        return np.asarray(lo > -margin, dtype=np.float64)
    return np.asarray((-margin < lo) & (hi < margin), dtype=np.float64)


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
    null_bounds: NullBoundsAt | None,
) -> tuple[dict[str, int] | None, bool]:
    """Per-group n at which, if the true delta were 0, the verdict would be "within" with
    ``power`` (for equivalence both bounds must clear, so each side gets half the miss rate),
    and whether no n up to a million times today's reaches it."""
    if margin <= 0 or not all(math.isfinite(v) for v in delta.unit_sd):
        return None, True
    side_power = 1.0 - (1.0 - power) / 2.0 if worse == "either" else power

    def enough(scale: float) -> bool:
        if null_bounds is not None:
            lo, hi = null_bounds(alpha_at(scale), scale)
            return float(np.mean(_within_each(lo, hi, margin, worse))) >= power
        down, up = detectable_distance(delta_at(alpha_at(scale), scale), side_power)
        need = {"higher": up, "lower": down}.get(worse, max(up, down))
        return need <= margin

    lo, hi = 0.0, math.log(1e6)
    if enough(1.0):
        # Enough data already: undecided only because the estimate is near the margin.
        return None, False
    if not enough(math.exp(hi)):
        return None, True
    # Simulated power is known to about +-0.02: 14 halvings (about 0.1 % in n) are plenty.
    for _ in range(14 if null_bounds is not None else 25):
        mid = (lo + hi) / 2.0
        if enough(math.exp(mid)):
            hi = mid
        else:
            lo = mid
    scale = math.exp(hi)
    return {
        "control": math.ceil(delta.control.n * scale),
        "treatment": math.ceil(delta.treatment.n * scale),
    }, False


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
