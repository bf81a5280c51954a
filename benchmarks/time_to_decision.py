"""Time to decision of a 7-day canary: our phase-anchored group-sequential gates against a
sliding window and the rules Flagger, Argo Rollouts and Kayenta users write (not a timed test).

Simulated canaries in the staging contract's latency buckets (staging/metrics.py): control
60 req/s, a 5 % treatment cohort (3.16 req/s), lognormal latency (median 6 ms, sigma 0.6, p99
about 24 ms), control error rate 0.5 %; per-minute bucket and error counts drawn as multinomial
and binomial increments, a look every 10 minutes for 7 days (1008 looks). Gates as in phase 2 of
gates/rollout.toml: p99 within +10 ms and error rate within +0.1 pp (criteria), abort when p99 is
proven more than +20 ms or the error rate more than +0.1 pp worse; 95 % two-sided (0.025 a side).

Strategies (a decision is final: the first GO or ABORT ends the replicate):
* ``ours``: counts since the phase start; criteria at the O'Brien-Fleming look level
  ``obf_look_alpha(0.025, t)``, ``t = elapsed / 7 d``; abort triggers on the confidence sequence
  tuned at ``tuning_n`` (per group); min_hold 24 h before any GO; min_samples 1000 per group.
* ``ours, sliding 1 h``: the same gates over the last hour only, both sides on the confidence
  sequence tuned at 1000 (today's ``sequential = true``), min_hold 24 h.
* ``flagger``: point estimates (histogram_quantile, errors / requests) of treatment minus control
  over each 1-minute interval; a check fails when either exceeds its abort threshold; rollback at
  5 failed checks (Flagger's ``threshold``, counted over the analysis), promotion after 24 h.
* ``argo``: the same point estimates over each 10-minute interval, ``failureLimit: 3`` (the 4th
  failed measurement fails the AnalysisRun), promotion after 24 h (144 measurements).
* ``kayenta``: per 10-minute interval, Mann-Whitney U at 98 % (mann_whitney_binned) on the
  latency buckets and on (ok, error) counts; an interval in which either metric is significantly
  higher scores 50 < the marginal 75 and fails the canary; promotion after 24 h.

    PYTHONPATH=. python benchmarks/time_to_decision.py [--reps 200] [--tuning-n 1000 ...]

Writes benchmarks/results/time_to_decision.json and prints the table in docs/statistics.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.stats import lognorm

from pytest_rollout.stats import mann_whitney_binned, proportion_delta, quantile_delta_bounds
from pytest_rollout.stats.sequential import critical_value
from pytest_rollout.stats.spending import obf_look_alpha
from staging.metrics import LATENCY_BUCKETS

BOUNDS = np.array(LATENCY_BUCKETS, dtype=np.float64)  # ends with +Inf
CONTROL_RPS, SHARE = 60.0, 0.05
TREATMENT_RPS = CONTROL_RPS * SHARE / (1.0 - SHARE)
MEDIAN, SIGMA, P_ERR = 0.006, 0.6, 0.005
ALPHA = 0.025
P99_MARGIN, P99_ABORT, ERR_MARGIN, ERR_ABORT = 0.010, 0.020, 0.001, 0.001
LOOK_MIN, DAYS = 10, 7
LOOKS = DAYS * 24 * 60 // LOOK_MIN  # 1008
HOLD_LOOKS = 24 * 60 // LOOK_MIN  # min_hold 24 h = 144 looks
MIN_SAMPLES = 1000
SEED = 20261130
FloatArray = npt.NDArray[np.float64]

# name -> (latency transform of the lognormal as a cdf, treatment error rate)
SCENARIOS: dict[str, tuple[str, float, float]] = {
    "A/A": ("shift", 0.0, P_ERR),
    "at the margin (p99 +10 ms, errors +0.1 pp)": ("shift", 0.010, P_ERR + 0.001),
    "at the abort margin (p99 +20 ms, errors +0.1 pp)": ("shift", 0.020, P_ERR + 0.001),
    "abort-sized (p99 +30 ms in the tail, errors +0.5 pp)": ("tail", 0.030, P_ERR + 0.005),
    "gross (p99 +80 ms)": ("shift", 0.080, P_ERR),
}


def bucket_probs(kind: str, extra: float) -> FloatArray:
    """Bucket probabilities of ``shift``: every query ``extra`` slower; ``tail``: only queries
    above the 98th percentile ``extra`` slower (p99 moves by exactly ``extra``)."""
    b = BOUNDS.copy()
    if kind == "shift":
        cdf = lognorm.cdf(b - extra, s=SIGMA, scale=MEDIAN)
    else:
        q98 = float(lognorm.ppf(0.98, s=SIGMA, scale=MEDIAN))
        base = lognorm.cdf(b, s=SIGMA, scale=MEDIAN)
        cdf = np.where(b < q98, base, np.where(b < q98 + extra, 0.98, 0.0))
        cdf = np.where(b >= q98 + extra, lognorm.cdf(b - extra, s=SIGMA, scale=MEDIAN), cdf)
    cdf[-1] = 1.0
    return np.asarray(np.diff(np.concatenate(([0.0], cdf))), dtype=np.float64)


def point_quantile(cum: FloatArray, q: float) -> FloatArray:
    """histogram_quantile over the last axis of cumulative counts (what the rules query)."""
    n = cum[..., -1]
    rank = q * n
    k = np.clip(np.sum(cum < rank[..., None], axis=-1), 0, BOUNDS.size - 1)
    prev = np.where(k > 0, np.take_along_axis(cum, np.maximum(k - 1, 0)[..., None], -1)[..., 0], 0)
    here = np.take_along_axis(cum, k[..., None], -1)[..., 0]
    lo = np.where(k > 0, BOUNDS[np.maximum(k - 1, 0)], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.clip(np.where(here > prev, (rank - prev) / (here - prev), 1.0), 0.0, 1.0)
        value = lo + (BOUNDS[k] - lo) * frac
    value = np.where(k == BOUNDS.size - 1, BOUNDS[-2], value)
    return np.asarray(np.where(n > 0, value, np.nan), dtype=np.float64)


def newcombe(
    xc: FloatArray, nc: float, xt: FloatArray, nt: float, zc: float, zt: float
) -> tuple[FloatArray, FloatArray]:
    """Vectorised Newcombe bounds (a screen only: decisions are confirmed with proportion_delta)."""

    def wilson(x: FloatArray, n: float, z: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        p = x / n
        denom = n + z * z
        centre = (x + z * z / 2.0) / denom
        half = z / denom * np.sqrt(np.maximum(x * (1.0 - p), 0.0) + z * z / 4.0)
        return p, centre - half, centre + half

    pc, lc, uc = wilson(xc, nc, zc)
    pt, lt, ut = wilson(xt, nt, zt)
    d = pt - pc
    return d - np.hypot(pt - lt, uc - pc), d + np.hypot(ut - pt, pc - lc)


class Gates:
    """Per-look verdicts of the phase-2 gates for one evidence window (since start or 1 h)."""

    def __init__(self, reps: int, crit_seq: bool, abort_tuning: float) -> None:
        self.crit_seq, self.abort_tuning = crit_seq, abort_tuning
        shape = (reps, LOOKS)
        self.p99_abort = np.zeros(shape, bool)
        self.p99_within = np.zeros(shape, bool)
        self.err_abort_screen = np.zeros(shape, bool)
        self.err_within_screen = np.zeros(shape, bool)
        self.counts: list[tuple[FloatArray, float, FloatArray, float]] = []

    def crit_alpha(self, look: int) -> float:
        return ALPHA if self.crit_seq else obf_look_alpha(ALPHA, (look + 1) / LOOKS)

    def look(self, look: int, c: FloatArray, t: FloatArray, xc: FloatArray, xt: FloatArray) -> None:
        nc, nt = float(c[0, -1]), float(t[0, -1])
        self.counts.append((xc.copy(), nc, xt.copy(), nt))
        if min(nc, nt) < MIN_SAMPLES:
            return
        _, lo, _ = quantile_delta_bounds(
            BOUNDS, c, t, 0.99, alpha=ALPHA, sequential=True, tuning_n=self.abort_tuning
        )
        a = self.crit_alpha(look)
        if a > 0:
            _, _, hi = quantile_delta_bounds(
                BOUNDS, c, t, 0.99, alpha=a, sequential=self.crit_seq, tuning_n=1000.0
            )
            self.p99_within[:, look] = hi < P99_MARGIN
        self.p99_abort[:, look] = lo > P99_ABORT
        za = [
            critical_value(ALPHA, n, sequential=True, tuning_n=self.abort_tuning) for n in (nc, nt)
        ]
        lo_e, _ = newcombe(xc, nc, xt, nt, 0.9 * za[0], 0.9 * za[1])
        self.err_abort_screen[:, look] = lo_e > ERR_ABORT
        if a > 0:
            zw = [critical_value(a, n, sequential=self.crit_seq) for n in (nc, nt)]
            _, hi_e = newcombe(xc, nc, xt, nt, 0.9 * zw[0], 0.9 * zw[1])
            self.err_within_screen[:, look] = hi_e < ERR_MARGIN

    def decide(self) -> tuple[FloatArray, FloatArray]:
        """(minutes to ABORT, minutes to GO) per replicate, inf when it never happened."""
        reps = self.p99_abort.shape[0]
        go_ok = np.zeros_like(self.p99_within)
        go_ok[:, HOLD_LOOKS - 1 :] = True
        maybe = (
            self.p99_abort
            | self.err_abort_screen
            | (go_ok & self.p99_within & self.err_within_screen)
        )
        abort, go = np.full(reps, np.inf), np.full(reps, np.inf)
        for rep in range(reps):
            for look in np.flatnonzero(maybe[rep]):
                xc, nc, xt, nt = self.counts[look]
                args = (xc[rep], nc, xt[rep], nt)
                minutes = (look + 1) * LOOK_MIN
                if self.p99_abort[rep, look] or (
                    self.err_abort_screen[rep, look]
                    and proportion_delta(
                        *args, alpha=ALPHA, sequential=True, tuning_n=self.abort_tuning
                    ).ci[0]
                    > ERR_ABORT
                ):
                    abort[rep] = minutes
                    break
                a = self.crit_alpha(int(look))
                if (
                    go_ok[rep, look]
                    and self.p99_within[rep, look]
                    and self.err_within_screen[rep, look]
                    and proportion_delta(*args, alpha=a, sequential=self.crit_seq).ci[1]
                    < ERR_MARGIN
                ):
                    go[rep] = minutes
                    break
        return abort, go


class PointRule:
    """Flagger / Argo: a failed check when a point-estimate delta exceeds its abort threshold."""

    def __init__(self, reps: int, limit: int) -> None:
        self.failed = np.zeros(reps, int)
        self.abort = np.full(reps, np.inf)
        self.limit = limit

    def check(self, minutes: float, c: Any, t: Any, xc: Any, xt: Any) -> None:
        with np.errstate(invalid="ignore", divide="ignore"):
            d99 = point_quantile(t, 0.99) - point_quantile(c, 0.99)
            derr = xt / t[..., -1] - xc / c[..., -1]
        fail = ~((d99 <= P99_ABORT) & (derr <= ERR_ABORT))  # no data fails the check too
        self.failed += fail & np.isinf(self.abort)
        self.abort[(self.failed >= self.limit) & np.isinf(self.abort)] = minutes


def kayenta_fails(c: FloatArray, t: FloatArray, xc: float, xt: float) -> bool:
    """One interval fails when latency or errors are higher in treatment at 98 %."""
    lat = mann_whitney_binned(np.diff(c, prepend=0.0), np.diff(t, prepend=0.0))
    nc, nt = c[-1], t[-1]
    err = mann_whitney_binned([nc - xc, xc], [nt - xt, xt])
    return any(m.p_value < 0.02 and m.prob_treatment_higher > 0.5 for m in (lat, err))


def simulate(
    name: str, reps: int, tunings: list[float], rng: np.random.Generator
) -> dict[str, Any]:
    kind, extra, p_t = SCENARIOS[name]
    probs_c, probs_t = bucket_probs("shift", 0.0), bucket_probs(kind, extra)
    nmin_c, nmin_t = round(CONTROL_RPS * 60), round(TREATMENT_RPS * 60)
    ours = {tn: Gates(reps, False, tn) for tn in tunings}
    sliding = Gates(reps, True, 1000.0)
    flagger, argo = PointRule(reps, 5), PointRule(reps, 4)
    kayenta = np.full(reps, np.inf)
    hist_c: list[FloatArray] = []
    hist_t: list[FloatArray] = []
    err_c: list[FloatArray] = []
    err_t: list[FloatArray] = []
    for look in range(LOOKS):
        minutes = (look + 1) * LOOK_MIN
        if look < HOLD_LOOKS:  # the point rules judge every minute until they promote at 24 h
            mc = np.cumsum(rng.multinomial(nmin_c, probs_c, size=(reps, LOOK_MIN)), axis=2)
            mt = np.cumsum(rng.multinomial(nmin_t, probs_t, size=(reps, LOOK_MIN)), axis=2)
            ec = rng.binomial(nmin_c, P_ERR, size=(reps, LOOK_MIN))
            et = rng.binomial(nmin_t, p_t, size=(reps, LOOK_MIN))
            for m in range(LOOK_MIN):
                flagger.check(minutes - LOOK_MIN + m + 1, mc[:, m], mt[:, m], ec[:, m], et[:, m])
            ic, it = mc.sum(axis=1).astype(float), mt.sum(axis=1).astype(float)
            xc, xt = ec.sum(axis=1).astype(float), et.sum(axis=1).astype(float)
            argo.check(minutes, ic, it, xc, xt)
            for rep in np.flatnonzero(np.isinf(kayenta)):
                if kayenta_fails(ic[rep], it[rep], xc[rep], xt[rep]):
                    kayenta[rep] = minutes
        else:
            ic = np.cumsum(rng.multinomial(nmin_c * LOOK_MIN, probs_c, size=reps), axis=1)
            it = np.cumsum(rng.multinomial(nmin_t * LOOK_MIN, probs_t, size=reps), axis=1)
            xc = rng.binomial(nmin_c * LOOK_MIN, P_ERR, size=reps).astype(float)
            xt = rng.binomial(nmin_t * LOOK_MIN, p_t, size=reps).astype(float)
        hist_c.append(ic.astype(float))
        hist_t.append(it.astype(float))
        err_c.append(xc)
        err_t.append(xt)
        if look == 0:
            since = [hist_c[0].copy(), hist_t[0].copy(), err_c[0].copy(), err_t[0].copy()]
        else:
            for acc, new in zip(since, (hist_c[-1], hist_t[-1], err_c[-1], err_t[-1]), strict=True):
                acc += new
        for gates in ours.values():
            gates.look(look, *since)
        window = slice(max(0, look - 5), look + 1)  # the last hour: 6 looks of 10 minutes
        sliding.look(
            look,
            *(np.sum(np.stack(h[window]), axis=0) for h in (hist_c, hist_t, err_c, err_t)),
        )
        if look % 144 == 143:
            print(f"  {name}: day {(look + 1) // 144} of {DAYS}", flush=True)
    promote = float(HOLD_LOOKS * LOOK_MIN)
    out: dict[str, Any] = {}
    for tn, gates in ours.items():
        label = "ours" if tn == tunings[0] else f"ours, abort CS tuned at {tn:,.0f}"
        out[label] = summary(*gates.decide())
    out["ours, sliding 1 h"] = summary(*sliding.decide())
    for label, abort in (("flagger", flagger.abort), ("argo", argo.abort), ("kayenta", kayenta)):
        out[label] = summary(abort, np.where(np.isinf(abort), promote, np.inf))
    return out


def summary(abort: FloatArray, go: FloatArray) -> dict[str, Any]:
    def q(x: FloatArray, p: float) -> float | None:
        return float(np.percentile(x, p)) if x.size else None

    aborted, went = abort[np.isfinite(abort)], go[np.isfinite(go)]
    return {
        "p_abort": float(np.mean(np.isfinite(abort))),
        "p_go": float(np.mean(np.isfinite(go))),
        "p_hold_at_end": float(np.mean(~np.isfinite(abort) & ~np.isfinite(go))),
        "minutes_to_abort_median": q(aborted, 50),
        "minutes_to_abort_p90": q(aborted, 90),
        "minutes_to_go_median": q(went, 50),
    }


def _fmt_minutes(m: float | None) -> str:
    if m is None:
        return "—"
    return f"{m / 60:.1f} h" if m >= 120 else f"{m:.0f} min"


def table(results: dict[str, dict[str, Any]]) -> str:
    names = list(SCENARIOS)
    aa, margin, abort_margin, sized, gross = (results[n] for n in names)
    rows = [
        "| strategy | false GO at the margin | false ABORT A/A | false ABORT at the abort margin "
        "| GO A/A (median time) | ABORT abort-sized: median / p90 | ABORT gross: median / p90 |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in aa:
        rows.append(
            f"| {s} | {margin[s]['p_go']:.3f} | {aa[s]['p_abort']:.3f} "
            f"| {abort_margin[s]['p_abort']:.3f} "
            f"| {aa[s]['p_go']:.2f} ({_fmt_minutes(aa[s]['minutes_to_go_median'])}) "
            f"| {sized[s]['p_abort']:.2f}: {_fmt_minutes(sized[s]['minutes_to_abort_median'])} / "
            f"{_fmt_minutes(sized[s]['minutes_to_abort_p90'])} "
            f"| {gross[s]['p_abort']:.2f}: {_fmt_minutes(gross[s]['minutes_to_abort_median'])} / "
            f"{_fmt_minutes(gross[s]['minutes_to_abort_p90'])} |"
        )
    return "\n".join(rows)


def goals(results: dict[str, dict[str, Any]], label: str) -> dict[str, Any]:
    aa, margin, _, _, gross = (results[n][label] for n in SCENARIOS)
    median_gross = gross["minutes_to_abort_median"]
    return {
        "false GO at the margin <= 0.025": margin["p_go"] <= 0.025,
        "false ABORT on A/A <= 0.01": aa["p_abort"] <= 0.01,
        "ABORT on the gross regression <= 15 min (p90)": (
            gross["p_abort"] == 1.0 and (gross["minutes_to_abort_p90"] or math.inf) <= 15
        ),
        "healthy GO when min_hold has passed (median)": (
            aa["minutes_to_go_median"] == HOLD_LOOKS * LOOK_MIN and median_gross is not None
        ),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=200, help="replicates per scenario")
    parser.add_argument(
        "--tuning-n",
        type=float,
        nargs="+",
        default=[1000.0],
        help="abort confidence-sequence tuning n for ours (the first is the headline)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/time_to_decision.json")
    )
    args = parser.parse_args(argv)
    rng = np.random.default_rng(SEED)
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    for name in SCENARIOS:
        t0 = time.perf_counter()
        print(f"{name} ({args.reps} replicates)", flush=True)
        results[name] = simulate(name, args.reps, list(args.tuning_n), rng)
        print(f"  done in {time.perf_counter() - t0:.0f} s", flush=True)
    report = {
        "setup": {
            "control_rps": CONTROL_RPS,
            "treatment_rps": round(TREATMENT_RPS, 3),
            "latency": f"lognormal median {MEDIAN * 1e3:g} ms sigma {SIGMA}, staging buckets",
            "control_error_rate": P_ERR,
            "look_minutes": LOOK_MIN,
            "days": DAYS,
            "min_hold_hours": HOLD_LOOKS * LOOK_MIN / 60,
            "min_samples": MIN_SAMPLES,
            "alpha_per_side": ALPHA,
            "abort_tuning_n": args.tuning_n,
            "reps": args.reps,
            "seed": SEED,
            "mc_se_at_0.025": round(math.sqrt(0.025 * 0.975 / args.reps), 4),
        },
        "scenarios": results,
        "goals_ours": {
            f"{tn:g}": goals(results, "ours" if i == 0 else f"ours, abort CS tuned at {tn:,.0f}")
            for i, tn in enumerate(args.tuning_n)
        },
        "seconds": round(time.perf_counter() - started, 1),
        "machine": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(results))
    print(json.dumps(report["goals_ours"], indent=2))
    print(f"wrote {args.out} in {report['seconds']} s")


if __name__ == "__main__":
    main()
