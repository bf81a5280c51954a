"""Error rates of the soak leak check at its limit (not a timed test), the long version of
tests/load/test_leak_error_rates.py.

For each RSS noise law of tests/load/rss_laws.py, two hours at 15 s, the 1 %/h phase 0 limit:

* at the limit (slope == limit): false pass (upper bound under it) and false fail (lower bound
  over it), each allowed 2.5 %, for the gate's estimate and for the OLS + Newey-West interval it
  replaced (re-implemented below, as it was, for the comparison only);
* at 0 %/h and at 3 %/h: how often the gate passes and fails (its power);
* the median interval width.

    PYTHONPATH=. python benchmarks/leak_error_rates.py   # about a minute

Writes benchmarks/results/leak_error_rates.json and prints it.
"""

from __future__ import annotations

import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from tests.load.rss_laws import HOUR, LAWS, START_BYTES, verdict_shares

SEED = 20261201
REPS = 4_000
LIMIT = 1.0


def replaced_interval(t: np.ndarray, rss: np.ndarray) -> tuple[float, float]:
    """The interval before this benchmark: OLS slope, max(classic, Newey-West lag n^1/3), t."""
    n = t.size
    x = t - t.mean()
    sxx = float(x @ x)
    slope = float(x @ (rss - rss.mean())) / sxx
    e = rss - (rss.mean() + slope * x)
    u = x * e
    lags = min(n - 1, math.ceil(n ** (1 / 3)))
    s = float(u @ u)
    for lag in range(1, lags + 1):
        s += 2 * (1 - lag / (lags + 1)) * float(u[lag:] @ u[:-lag])
    var = max(float(e @ e) / (n - 2) / sxx, max(s, 0.0) / sxx**2 * n / (n - 2))
    half = max(float(stats.t.ppf(0.975, n - 2)) * math.sqrt(var), 4096.0 / (t[-1] - t[0]))
    start = float(rss.mean() + slope * (t[0] - t.mean()))
    scale = HOUR * 100.0 / start
    return (slope - half) * scale, (slope + half) * scale


def replaced_rates(law: Any, reps: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, 2 * HOUR + 1.0, 15.0)
    line = START_BYTES * (1.0 + LIMIT / 100.0 * t / HOUR)
    passed = failed = 0
    for _ in range(reps):
        low, high = replaced_interval(t, line + law(rng, t.size))
        passed += high < LIMIT
        failed += low > LIMIT
    return {"pass": passed / reps, "fail": failed / reps}


def main() -> dict[str, Any]:
    start = time.time()
    laws = {}
    for index, (name, law) in enumerate(LAWS.items()):
        seed = SEED + index
        laws[name] = {
            "at_limit": verdict_shares(law, reps=REPS, seed=seed),
            "at_limit_replaced_ols_newey_west": replaced_rates(law, REPS, seed),
            "at_0_pct_h": verdict_shares(law, reps=REPS // 4, seed=seed, slope=0.0),
            "at_3_pct_h": verdict_shares(law, reps=REPS // 4, seed=seed, slope=3.0),
        }
        print(name, json.dumps(laws[name]["at_limit"]), flush=True)
    return {
        "benchmark": "leak_error_rates",
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": 2, "python": platform.python_version(), "numpy": np.__version__},
        "run": {"hours": 2, "step_s": 15, "limit_pct_per_hour": LIMIT, "reps": REPS},
        "nominal_per_side": 0.025,
        "laws": laws,
        "seconds": round(time.time() - start, 1),
    }


if __name__ == "__main__":
    out = main()
    path = Path(__file__).parent / "results" / "leak_error_rates.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=1))
    print(f"written to {path}")
