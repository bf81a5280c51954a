"""Phase 1's overhead gates against the baseline twin, on the real two-replica stack.

Sets the stack up as scripts/rehearse.py does (1000 spaces seeded with 5 episodes each, 300 req/s
of Zipf-0.5 traffic with 7 % writes, mirrored to the twin), then runs phase 1's four overhead
gates in the ci profile (2-minute window) ``--runs`` times with the shadow's flags off (the two
replicas identical: any overhead is noise) and ``--runs`` times with phase 1's flags on the shadow
(formation every ``--formation-interval`` s). Each run records each gate's outcome, delta and
interval, and the formation CPU share the CPU gate observes.

    PYTHONPATH=. python benchmarks/shadow_twin_overhead.py \
        --out benchmarks/results/shadow_twin_overhead.json

Results (2 shared cores at load average 12-25, windows 1 minute apart; delta and interval of the
gate, two-sided at 1 - 2 alpha): every one of the 12 gate runs decided, all PASS.
* flags off on both (identical replicas): CPU -2.3 % [-3.3, -1.4], -1.8 % [-3.3, -0.4],
  -2.6 % [-4.3, -0.9]; RSS -0.0 % [-0.0, -0.0], +0.4 % [+0.4, +0.5], +0.4 % [+0.4, +0.5].
  Two identical processes differ by a steady couple of percent: an offset of the pair, not
  sampling noise, so the intervals need not cover 0; it is well inside the +5 % margin.
* phase 1 flags on the shadow, formation every 10 s: CPU +0.3 % [-0.6, +1.2], +0.8 % [-0.0, +1.7],
  +0.1 % [-1.5, +1.7]; RSS +2.7 %, +2.9 %, +3.0 % (intervals +-0.05); formation's CPU share 4.1-4.6 %.
The stale-baseline comparison this replaces drifted by up to +22 % with nothing changed
(benchmarks/shadow_cpu_overhead.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from staging.client import EngramClient  # noqa: E402
from staging.stack import Stack  # noqa: E402

GATES = "overhead"  # the four CPU/RSS gates of phase 1
FORMATION_SHARE = (
    'sum(rate(engram_concept_formation_duration_seconds_sum{replica="shadow"}[2m])) / '
    'sum(rate(process_cpu_seconds_total{replica="shadow"}[2m]))'
)


def _cli(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "staging", "--workdir", str(workdir), *args]


def _gates(stack: Stack, out: Path, label: str) -> dict[str, Any]:
    record_path = out / f"{label}.json"
    env = {**os.environ, **stack.env(), "PYTHONPATH": str(ROOT), "ROLLOUT_ENV": "ci"}
    subprocess.run(
        [sys.executable, "-m", "pytest", "gates/test_phase1_shadow.py", "-k", GATES, "-q",
         "-p", "no:cacheprovider", "--rollout-decision-json", str(record_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    record = json.loads(record_path.read_text())
    share = stack.query(FORMATION_SHARE)
    return {
        "label": label,
        "at": record.get("at"),
        "formation_cpu_share": float(share[0]["value"][1]) if share else None,
        "gates": {
            g["nodeid"].rsplit("::", 1)[-1]: {
                "outcome": g["outcome"],
                "delta_pct": g["observed"],
                "ci_pct": g["ci"],
                "threshold_pct": g["threshold"],
                "n": g["n"],
            }
            for g in record["gates"]
            if GATES in g["nodeid"]
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gap", type=float, default=60.0, help="seconds between runs")
    parser.add_argument("--rps", type=float, default=300.0)
    parser.add_argument("--spaces", type=int, default=1000)
    parser.add_argument("--formation-interval", type=float, default=10.0)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/shadow_twin_overhead.json"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="twin-bench-"))
    stack = Stack.up(work / "stack", formation_interval_s=args.formation_interval)
    runs: list[dict[str, Any]] = []
    traffic: subprocess.Popen[bytes] | None = None
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        seed = [
            "seed",
            "--episodes",
            str(args.spaces * 5),
            "--spaces",
            str(args.spaces),
            "--skew",
            "0.5",
        ]
        subprocess.run(
            _cli(work / "stack", *seed), cwd=ROOT, env=env, check=True, capture_output=True
        )
        total = 2 * (130 + args.runs * args.gap) + 120
        traffic = subprocess.Popen(
            _cli(work / "stack", "traffic", "--duration", f"{total:.0f}s", "--rps", str(args.rps),
                 "--spaces", str(args.spaces), "--skew", "0.5"),
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        with EngramClient(stack.engram_url, stack.admin_token) as engram:
            for condition in ("off", "on"):
                if condition == "on":
                    engram.set_flags(dual_memory_types=True, concept_formation=True)
                time.sleep(130)  # one full 2-minute window in this condition
                for i in range(args.runs):
                    if i:
                        time.sleep(args.gap)
                    runs.append(_gates(stack, work, f"{condition}-{i + 1}"))
                    print(json.dumps(runs[-1]), flush=True)
    finally:
        if traffic is not None and traffic.poll() is None:
            os.kill(traffic.pid, signal.SIGTERM)
            traffic.wait(timeout=30)
        stack.down()
    args.out.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg(), "python": platform.python_version()},
        "settings": {k: str(v) for k, v in vars(args).items()},
        "runs": runs,
    }, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
