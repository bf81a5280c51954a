"""How many requests/s the soak runner sustains against a trivial loopback target.

Runs the real soak path (``SoakRunner``: Locust in subprocesses, per-interval statistics, /proc
sampling of the target) against ``tests/load/toy_target.py`` with no added latency, once with one
Locust process and once with a master and 2 workers, and writes
``benchmarks/results/load_generator.json``.

    PYTHONPATH=. python benchmarks/load_generator.py [--duration 15] [--users 32]

On a 2-core machine the target and the generator share the CPU, so the figures are a floor for
the generator's capacity; the JSON records both sides' CPU use to show which one was saturated.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pytest_rollout.load.runner import SoakRunner  # noqa: E402
from pytest_rollout.load.soak_config import SoakConfig  # noqa: E402

LOCUSTFILE = """
from locust import FastHttpUser, constant, task


class Hammer(FastHttpUser):
    wait_time = constant(0)  # no think time: measure the generator, not the model

    @task
    def work(self) -> None:
        self.client.get("/work")
"""

# The staging traffic model (staging/locustfile.py): think time uniform 10-100 ms per request.
STAGING_MEAN_THINK_S = 0.055
STAGING_SOAK_USERS = 20


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(name: str, workers: int, users: int, duration: float, workdir: Path) -> dict[str, Any]:
    target = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "load" / "toy_target.py"), "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert target.stdout is not None
        info = json.loads(target.stdout.readline())
        locustfile = workdir / "locustfile_hammer.py"
        locustfile.write_text(LOCUSTFILE)
        config = SoakConfig(
            target=f"http://127.0.0.1:{info['port']}", locustfile=locustfile, users=users,
            spawn_rate=float(users), duration_s=duration, warmup_s=3.0, workers=workers,
            interval_s=1.0, sample_interval_s=1.0, progress_every_s=5.0, target_pid=info["pid"],
        )  # fmt: skip
        wall0, cpu0 = time.time(), os.times()
        result = SoakRunner(workdir / name).run(config, out=workdir / f"{name}.json")
        wall, cpu1 = time.time() - wall0, os.times()
        summary = result.summary()
        children_cpu = (cpu1.children_user - cpu0.children_user) + (
            cpu1.children_system - cpu0.children_system
        )
        return {
            "case": name,
            "locust_processes": 1 if workers == 0 else workers + 1,
            "users": users,
            "measured_s": round(summary["measured_s"], 2),
            "requests": summary["requests"],
            "failures": summary["failures"],
            "rps": round(summary["rps"], 1),
            "rps_per_interval_min": round(min(i.rps for i in result.measured_intervals()), 1),
            "p50_ms": summary["p50_ms"],
            "p99_ms": summary["p99_ms"],
            "target_cpu_cores": round(summary["cpu_cores_mean"], 3),
            # Locust processes (target excluded: it is still running and not reaped yet).
            "generator_cpu_cores": round(children_cpu / wall, 3),
        }
    finally:
        target.terminate()
        target.wait(timeout=10)
        if target.stdout is not None:
            target.stdout.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per case")
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/load_generator.json")
    args = parser.parse_args()
    load_before = os.getloadavg()  # CPU is shared: a busy machine lowers every figure
    with tempfile.TemporaryDirectory(prefix="rollout-loadgen-") as tmp:
        cases = [
            run_case("one_process", 0, args.users, args.duration, Path(tmp)),
            run_case("two_workers", 2, args.users, args.duration, Path(tmp)),
        ]
    demand = STAGING_SOAK_USERS / STAGING_MEAN_THINK_S
    best = max(c["rps"] for c in cases)
    results = {
        "benchmark": "load_generator",
        "what": "requests/s sustained by SoakRunner (Locust FastHttpUser, no think time) against "
        "tests/load/toy_target.py on loopback, target and generator on the same machine",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    "loadavg_1m_before": round(load_before[0], 2),
                    "loadavg_1m_after": round(os.getloadavg()[0], 2)},
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cases": cases,
        "staging_phase0_soak": {
            "users": STAGING_SOAK_USERS,
            "mean_think_s": STAGING_MEAN_THINK_S,
            "max_demand_rps": round(demand, 1),
            "generator_headroom": round(best / demand, 1),
            "note": "upper bound of what the staging traffic model asks for (think time only, "
            "zero service latency); the generator sustains many times that",
        },
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    for case in cases:
        print(f"{case['case']:12s} {case['rps']:8.0f} req/s  p50 {case['p50_ms']} ms  "
              f"p99 {case['p99_ms']} ms  target {case['target_cpu_cores']} cores  "
              f"generator {case['generator_cpu_cores']} cores")  # fmt: skip
    print(f"staging soak demand <= {demand:.0f} req/s; headroom x{best / demand:.0f}")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
