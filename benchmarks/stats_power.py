"""False-positive rates and sample sizes for canary latency gates (not a timed test).

Known truth: lognormal recall latencies (median 6 ms, sigma 0.6, p99 about 24 ms) binned into
the metric contract's buckets. Compares our p99 delta interval (fixed horizon and always-valid)
with what users do today: the point-estimate rule ``p99_t - p99_c > 10 ms`` on
histogram_quantile, and Kayenta-style Mann-Whitney U at 98 % confidence.

    PYTHONPATH=. python benchmarks/stats_power.py   # about 30 s on 2 cores

Writes benchmarks/results/stats_power.json and prints a table (copied into docs/statistics.md).
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from pytest_rollout.openmetrics import LATENCY_BUCKETS
from pytest_rollout.stats import quantile_bounds, quantile_delta_bounds

BOUNDS = np.array([*LATENCY_BUCKETS, np.inf])
MEDIAN, SIGMA = 0.006, 0.6
ALPHA = 0.025  # per side: the gates' default 95 % two-sided interval
REGRESSION = 0.010
MWU_CONFIDENCE = 0.98
SEED = 20261125
FloatArray = npt.NDArray[np.float64]


def bucket_probs(median: float, sigma: float, shift: float = 0.0) -> FloatArray:
    from scipy.stats import lognorm

    cdf = lognorm.cdf(BOUNDS - shift, s=sigma, scale=median)
    cdf[-1] = 1.0
    return np.asarray(np.diff(np.concatenate(([0.0], cdf))), dtype=np.float64)


def p99(median: float, sigma: float, shift: float = 0.0) -> float:
    from scipy.stats import lognorm

    return float(shift + lognorm.ppf(0.99, s=sigma, scale=median))


def scenarios() -> dict[str, FloatArray]:
    """Treatment laws with p99 exactly +10 ms: a heavier tail (p50 unchanged), or +10 ms on
    every query."""
    base = p99(MEDIAN, SIGMA)
    from scipy.stats import norm

    sigma_tail = math.log((base + REGRESSION) / MEDIAN) / float(norm.ppf(0.99))
    return {
        "tail": bucket_probs(MEDIAN, sigma_tail),
        "shift": bucket_probs(MEDIAN, SIGMA, REGRESSION),
    }


def mwu_flags(c_cum: FloatArray, t_cum: FloatArray) -> npt.NDArray[np.bool_]:
    """Kayenta-style: treatment flagged 'High' when a two-sided Mann-Whitney U (ties corrected)
    rejects at 98 % and treatment tends to be larger. Vectorised over rows."""
    from scipy.stats import norm

    c = np.diff(c_cum, axis=1, prepend=0.0)
    t = np.diff(t_cum, axis=1, prepend=0.0)
    n_c, n_t = c.sum(1), t.sum(1)
    below = np.cumsum(c, axis=1) - c
    u = np.sum(t * (below + c / 2.0), axis=1)
    total = n_c + n_t
    ties = c + t
    var = n_c * n_t / 12.0 * ((total + 1) - np.sum(ties**3 - ties, axis=1) / (total * (total - 1)))
    z = (u - n_c * n_t / 2.0) / np.sqrt(var)
    p = 2 * norm.sf(np.abs(z))
    return np.asarray((p < 1 - MWU_CONFIDENCE) & (z > 0))


def flags(
    c_cum: FloatArray, t_cum: FloatArray, *, sequential: bool = False, tuning_n: float = 1000.0
) -> dict[str, npt.NDArray[np.bool_]]:
    """Which replications each method flags as a p99 regression."""
    _, lo, _ = quantile_delta_bounds(BOUNDS, c_cum, t_cum, 0.99, alpha=ALPHA)
    _, lo_seq, _ = quantile_delta_bounds(
        BOUNDS, c_cum, t_cum, 0.99, alpha=ALPHA, sequential=True, tuning_n=tuning_n
    )
    est_c = quantile_bounds(BOUNDS, c_cum, 0.99)[0]
    est_t = quantile_bounds(BOUNDS, t_cum, 0.99)[0]
    return {
        "ours_fixed": lo > 0,
        "ours_sequential": lo_seq > 0,
        "point_rule_10ms": (est_t - est_c) > REGRESSION,
        "mann_whitney_98": mwu_flags(c_cum, t_cum),
    }


def draw(rng: np.random.Generator, n: int, probs: FloatArray, reps: int) -> FloatArray:
    return np.cumsum(rng.multinomial(n, probs, size=reps), axis=1).astype(np.float64)


def false_positive_single(rng: np.random.Generator, n: int, reps: int) -> dict[str, float]:
    probs = bucket_probs(MEDIAN, SIGMA)
    f = flags(draw(rng, n, probs, reps), draw(rng, n, probs, reps))
    return {k: float(v.mean()) for k, v in f.items()}


def false_positive_looks(
    rng: np.random.Generator, looks: int, step: int, reps: int
) -> dict[str, float]:
    """A/A data re-evaluated after every ``step`` new queries per group, ``looks`` times; a
    replication counts as a false positive if any look flags it."""
    probs = bucket_probs(MEDIAN, SIGMA)
    k = BOUNDS.size
    c = np.cumsum(np.cumsum(rng.multinomial(step, probs, size=(reps, looks)), axis=1), axis=2)
    t = np.cumsum(np.cumsum(rng.multinomial(step, probs, size=(reps, looks)), axis=1), axis=2)
    f = flags(c.reshape(-1, k).astype(np.float64), t.reshape(-1, k).astype(np.float64))
    out = {k2: float(v.reshape(reps, looks).any(axis=1).mean()) for k2, v in f.items()}
    out["naive_fixed_repeated"] = out.pop("ours_fixed")
    return out


def power_curve(
    rng: np.random.Generator, treatment: FloatArray, grid: list[int], reps: int
) -> dict[str, dict[int, float]]:
    control = bucket_probs(MEDIAN, SIGMA)
    curve: dict[str, dict[int, float]] = {}
    for n in grid:
        f = flags(draw(rng, n, control, reps), draw(rng, n, treatment, reps))
        for name, hits in f.items():
            curve.setdefault(name, {})[n] = float(hits.mean())
    return curve


def needed(curve: dict[int, float], target: float = 0.8) -> int | None:
    """Smallest n of the grid with power >= target (log-interpolated between grid points)."""
    points = sorted(curve.items())
    for (n0, p0), (n1, p1) in zip(points, points[1:], strict=False):
        if p0 >= target:
            return n0
        if p1 >= target:
            frac = (target - p0) / (p1 - p0)
            return int(round(math.exp(math.log(n0) + frac * (math.log(n1) - math.log(n0)))))
    return points[0][0] if points and points[0][1] >= target else None


def main() -> dict[str, Any]:
    started = time.monotonic()
    rng = np.random.default_rng(SEED)
    grid = [250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000, 32000, 64000]
    reps_fp, reps_looks, reps_power = 20000, 2000, 3000
    result: dict[str, Any] = {
        "setup": {
            "latency": f"lognormal median {MEDIAN * 1000:g} ms sigma {SIGMA} "
            f"(p99 {p99(MEDIAN, SIGMA) * 1000:.1f} ms), design.md buckets",
            "alpha_per_side": ALPHA,
            "regression_ms": REGRESSION * 1000,
            "mann_whitney_confidence": MWU_CONFIDENCE,
            "seed": SEED,
            "reps": {"false_positive": reps_fp, "looks": reps_looks, "power": reps_power},
            "python": platform.python_version(),
        },
        "false_positive_single_look_n2000": false_positive_single(rng, 2000, reps_fp),
        "false_positive_100_looks_step100": false_positive_looks(rng, 100, 100, reps_looks),
        "power": {},
        "n_needed_power_0.8": {},
    }
    for name, probs in scenarios().items():
        curve = power_curve(rng, probs, grid, reps_power)
        result["power"][name] = {m: {str(n): p for n, p in c.items()} for m, c in curve.items()}
        result["n_needed_power_0.8"][name] = {m: needed(c) for m, c in curve.items()}
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def table(r: dict[str, Any]) -> str:
    methods = [
        ("ours_fixed", "ours, fixed horizon (95 % interval)"),
        ("ours_sequential", "ours, always-valid (sequential)"),
        ("point_rule_10ms", "point estimate p99_t - p99_c > 10 ms"),
        ("mann_whitney_98", "Kayenta-style Mann-Whitney U, 98 %"),
    ]
    fp1 = r["false_positive_single_look_n2000"]
    fpl = r["false_positive_100_looks_step100"]
    need = r["n_needed_power_0.8"]
    lines = [
        "| method | A/A false positives, 1 look, n=2000 | A/A false positives, 100 looks "
        "| n/group for 80 % power, +10 ms p99 (tail) | same, +10 ms on every query |",
        "|---|---|---|---|---|",
    ]
    for key, label in methods:
        looks = fpl["naive_fixed_repeated"] if key == "ours_fixed" else fpl[key]

        def fmt_n(v: int | None) -> str:
            return "never (>64000)" if v is None else f"{v:,}"

        lines.append(
            f"| {label} | {fp1[key]:.3f} | {looks:.3f} | {fmt_n(need['tail'][key])} "
            f"| {fmt_n(need['shift'][key])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    out = main()
    path = Path(__file__).parent / "results" / "stats_power.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(table(out))
    print(f"\n{out['seconds']} s; written to {path}")
