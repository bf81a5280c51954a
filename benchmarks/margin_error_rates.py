"""Error rates at the margin, not at 0, for every statistic the gates compare (not a timed test).

Seeded Monte Carlo with known truth, the long version of tests/stats/test_margin_error_rates.py:

* quantiles: four latency laws (lognormal, gamma, bimodal, Pareto), the design buckets and
  Prometheus' default buckets, p50/p90/p99, 5 % treatment splits; false GO = criterion proven
  "within" with the truth exactly at the margin, false ABORT = abort trigger proven "beyond"
  with the truth exactly at the abort margin; and "undecidable" = share of bucket-limited cases;
* quantile n_needed from small pilots with no real difference: the realized power at that n;
* rates: Miettinen-Nurminen (each side the outer of plain and skewness-corrected, what the gates
  use) against plain MN, skewness-corrected MN and Newcombe's MOVER-Wilson interval (what they
  used), p_c 0.1-2 %, both sides;
* rate sample size: realized power of ``required_sample_size`` with and without ``rates=``;
* histogram means: false "within" at the margin with and without the variance floor.

    PYTHONPATH=. python benchmarks/margin_error_rates.py   # a few minutes on 2 busy cores

Writes benchmarks/results/margin_error_rates.json and prints its summary.
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from pytest_rollout import stats
from tests.stats.laws import BUCKETS, DESIGN_BOUNDS, LAWS, bucket_probs, draw

ALPHA = 0.025
SEED = 20261130
SPLITS = [(19_000, 1_000), (95_000, 5_000), (190_000, 10_000)]
MARGINS = {0.99: (0.010, 0.020), 0.9: (0.010, 0.020), 0.5: (0.005, 0.010)}


def quantile_margins(rng: np.random.Generator, reps: int) -> dict[str, Any]:
    rows = []
    for bucket_name, bounds in BUCKETS.items():
        for law, cdf in LAWS.items():
            control = bucket_probs(cdf, bounds)
            for q, (margin, abort) in MARGINS.items():
                for n_c, n_t in SPLITS:
                    c = draw(rng, n_c, control, reps)
                    go = draw(rng, n_t, bucket_probs(cdf, bounds, margin), reps)
                    stop = draw(rng, n_t, bucket_probs(cdf, bounds, abort), reps)
                    _, _, hi = stats.quantile_delta_bounds(bounds, c, go, q, alpha=ALPHA)
                    _, lo, _ = stats.quantile_delta_bounds(bounds, c, stop, q, alpha=ALPHA)
                    rows.append(
                        {
                            "buckets": bucket_name,
                            "law": law,
                            "q": q,
                            "n_control": n_c,
                            "n_treatment": n_t,
                            "false_go": float(np.mean(hi < margin)),
                            "false_abort": float(np.mean(lo > abort)),
                        }
                    )
    limit = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / reps)
    return {
        "reps": reps,
        "limit_alpha_plus_3se": limit,
        "worst_false_go": {
            b: max(r["false_go"] for r in rows if r["buckets"] == b) for b in BUCKETS
        },
        "worst_false_abort": {
            b: max(r["false_abort"] for r in rows if r["buckets"] == b) for b in BUCKETS
        },
        "configurations_over_limit": sum(
            r["false_go"] > limit or r["false_abort"] > limit for r in rows
        ),
        "configurations": len(rows),
        "rows": rows,
    }


def n_needed_power(rng: np.random.Generator, pilots: int, reps: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for q, margin, pilot in ((0.99, 0.010, (1_900, 100)), (0.5, 0.005, (95, 5))):
        probs = bucket_probs(LAWS["lognormal"], DESIGN_BOUNDS)
        realized = []
        for _ in range(pilots):
            c, t = (draw(rng, n, probs, 1)[0] for n in pilot)
            need = stats.compare_quantiles(DESIGN_BOUNDS, c, t, q, margin).n_needed
            if need is None:
                continue
            cc = draw(rng, need["control"], probs, reps)
            tt = draw(rng, need["treatment"], probs, reps)
            _, _, hi = stats.quantile_delta_bounds(DESIGN_BOUNDS, cc, tt, q, alpha=ALPHA)
            realized.append(float(np.mean(hi < margin)))
        out[f"p{q * 100:g}"] = {
            "margin": margin,
            "pilot_n": list(pilot),
            "nominal_power": 0.8,
            "median_realized_power": float(np.median(realized)),
            "p10_realized_power": float(np.percentile(realized, 10)),
            "pilots": len(realized),
        }
    return out


def _newcombe(xc: Any, nc: int, xt: Any, nt: int) -> tuple[Any, Any]:
    z = 1.959963984540054
    lo, hi = [], []
    for a, b in zip(xc, xt, strict=True):
        c_lo, c_hi = stats.wilson_interval(a, nc, z)
        t_lo, t_hi = stats.wilson_interval(b, nt, z)
        pc, pt = a / nc, b / nt
        lo.append(pt - pc - math.hypot(pt - t_lo, c_hi - pc))
        hi.append(pt - pc + math.hypot(t_hi - pt, pc - c_lo))
    return np.array(lo), np.array(hi)


def rates(rng: np.random.Generator, reps: int) -> dict[str, Any]:
    rows = []
    for p_c in (0.001, 0.002, 0.005, 0.01, 0.02):
        for n_c, n_t in SPLITS[:2]:
            for margin in (0.001, 0.005):
                xc = rng.binomial(n_c, p_c, reps)
                xt = rng.binomial(n_t, p_c + margin, reps)
                row: dict[str, Any] = {"p_c": p_c, "n_control": n_c, "n_treatment": n_t}
                row["margin"] = margin
                for name, (lo, hi) in {
                    "mn_outer": stats.proportion_delta_bounds(xc, n_c, xt, n_t)[1:],
                    "mn_skewness_corrected": stats.proportion_delta_bounds(
                        xc, n_c, xt, n_t, skewness="corrected"
                    )[1:],
                    "mn_plain": stats.proportion_delta_bounds(xc, n_c, xt, n_t, skewness="none")[
                        1:
                    ],
                    "newcombe": _newcombe(xc, n_c, xt, n_t),
                }.items():
                    row[name] = {
                        "false_go": float(np.mean(hi < margin)),
                        "false_abort": float(np.mean(lo > margin)),
                    }
                rows.append(row)
    worst = {
        m: {side: max(r[m][side] for r in rows) for side in ("false_go", "false_abort")}
        for m in ("mn_outer", "mn_skewness_corrected", "mn_plain", "newcombe")
    }
    return {"reps": reps, "worst": worst, "rows": rows}


def rate_sample_size(rng: np.random.Generator, reps: int) -> dict[str, Any]:
    rows = []
    for p_c in (0.0002, 0.002, 0.01, 0.02):
        sd = math.sqrt(p_c * (1 - p_c))
        row: dict[str, Any] = {"p_c": p_c, "margin": 0.001, "ratio": 19}
        options: dict[str, dict[str, Any]] = {
            "normal_approximation": {},
            "exact_interval": {"rates": (p_c, p_c)},
        }
        for name, kw in options.items():
            size = stats.required_sample_size(sd, sd, 0.001, ratio=19.0, **kw)
            xc = rng.binomial(size.n_control, p_c, reps)
            xt = rng.binomial(size.n_treatment, p_c, reps)
            _, _, hi = stats.proportion_delta_bounds(
                xc, size.n_control, xt, size.n_treatment, alpha=ALPHA
            )
            row[name] = {
                "n_treatment": size.n_treatment,
                "realized_power": float(np.mean(hi < 0.001)),
            }
        rows.append(row)
    return {"nominal_power": 0.8, "reps": reps, "rows": rows}


def means(rng: np.random.Generator, reps: int) -> dict[str, Any]:
    bounds = np.array([*(0.05 * np.arange(1, 21)), np.inf])
    margin, out = 0.05, {}
    for sd in (0.009, 0.02, 0.05, 0.1):
        hits = {"floored": 0, "midpoints_only": 0}
        for _ in range(reps):
            ms = {"floored": [], "midpoints_only": []}
            for n, mean in ((1_900, 0.72), (100, 0.72 - margin)):
                x = np.clip(rng.normal(mean, sd, n), 0.0, 1.0)
                cum = np.searchsorted(np.sort(x), bounds, side="right").astype(np.float64)
                m = stats.histogram_moments(bounds, cum, float(x.sum()))
                counts = np.diff(np.concatenate(([0.0], cum)))
                mids = np.concatenate(([0.025], bounds[:-2] + 0.025, [bounds[-2]]))
                raw = float(np.dot(counts, (mids - m.mean) ** 2) / (n - 1))
                ms["floored"].append(m)
                ms["midpoints_only"].append(stats.Moments(m.mean, raw, m.n))
            for k, (c, t) in ms.items():
                lo, hi = stats.mean_delta(c, t, alpha=ALPHA).ci
                hits[k] += int(-margin < lo and hi < margin)
        out[f"sd_{sd}"] = {k: v / reps for k, v in hits.items()}
    return {"buckets": "0.05 wide", "n": [1_900, 100], "reps": reps, "false_within": out}


def main() -> dict[str, Any]:
    start = time.time()
    rng = np.random.default_rng(SEED)
    result = {
        "benchmark": "margin_error_rates",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": 2, "python": platform.python_version(), "numpy": np.__version__},
        "alpha_per_side": ALPHA,
        "quantiles": quantile_margins(rng, 4_000),
        "quantile_n_needed": n_needed_power(rng, 25, 600),
        "rates": rates(rng, 20_000),
        "rate_sample_size": rate_sample_size(rng, 5_000),
        "histogram_means": means(rng, 1_000),
    }
    result["seconds"] = round(time.time() - start, 1)
    return result


if __name__ == "__main__":
    out = main()
    path = Path(__file__).parent / "results" / "margin_error_rates.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    summary = {k: v for k, v in out.items() if k not in ("quantiles", "rates")}
    summary["quantiles"] = {k: v for k, v in out["quantiles"].items() if k != "rows"}
    summary["rates"] = out["rates"]["worst"]
    print(json.dumps(summary, indent=1))
    print(f"written to {path}")
