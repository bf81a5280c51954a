"""Latency of ``rollout serve``: phase 2's gates (10 gate tests) behind a warm server.

Goal (issue, section 2): Flagger's webhook timeout is 10 s, so POST /v1/phases/phase2/evaluate
must answer in <= 2 s p95 on a warm server against the staging Prometheus.

The staging metric contract is served by a real Prometheus (/usr/bin/prometheus) over the week
of 15 s-scrape history of benchmarks/day7_history.py (the cached, compacted TSDB that
benchmarks/day7_gate_speed.py builds; copied here so two benchmarks never share a TSDB). The
server runs the repo's gates the way an operator would (``--rollout-env staging``,
ROLLOUT_PROMETHEUS_URL, ROLLOUT_FLAGS at a flagd file holding phase 2's values), pinned at the
end of the week, with the decision record and HTML report of every run. Two evidence spans:

- ``canary_2h``: the canary began 2 h before the instant (``since`` = END - 2 h), a canary in
  its Flagger analysis;
- ``day7``: the canary began 7 days before (``since`` = phase start), the worst case.

Per span: one warm-up request, then ``--runs`` sequential requests timed at the client
(p50/p95/max), and, for comparison, cold ``python -m pytest`` runs of the same command.

    PYTHONPATH=. python benchmarks/serve_latency.py            # -> benchmarks/results/serve_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from day7_gate_speed import build_tsdb  # noqa: E402
from day7_history import END, PHASE2_FLAGS, PHASE_START  # noqa: E402

from pytest_rollout.instants import rfc3339  # noqa: E402
from pytest_rollout.net import free_port  # noqa: E402
from pytest_rollout.promserver import start  # noqa: E402
from staging.flags import write_initial_flag_file  # noqa: E402

GOAL_P95_S = 2.0
SPANS = {"canary_2h": END - 2 * 3600, "day7": PHASE_START}


def log(message: str) -> None:
    print(f"[serve_latency {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def post(url: str, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        answer = json.loads(response.read())
    return time.perf_counter() - started, answer


def wait_healthy(url: str, process: subprocess.Popen[bytes], limit_s: float = 120.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if process.poll() is not None:
            raise RuntimeError(f"rollout serve exited {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2):
                return time.monotonic() - started
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("rollout serve did not answer /healthz")


def cpu_s(pid: int, *, children: bool) -> float:
    """utime+stime (or, for reaped children, cutime+cstime) of ``pid`` from /proc, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    first = 13 if children else 11  # fields 16-17 / 14-15 of proc(5), after the ")"
    return (int(fields[first]) + int(fields[first + 1])) / ticks


def zygote_pid(serve_pid: int) -> int:
    """The forkserver child of the server: its reaped children are the gate runs."""
    for child in Path(f"/proc/{serve_pid}/task/{serve_pid}/children").read_text().split():
        if b"forkserver" in Path(f"/proc/{child}/cmdline").read_bytes():
            return int(child)
    raise RuntimeError("no forkserver under the server")


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index], 3)


def summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50_s": quantile(values, 0.5),
        "p95_s": quantile(values, 0.95),
        "max_s": round(max(values), 3),
        "mean_s": round(statistics.fmean(values), 3),
    }


def cold_runs(env: dict[str, str], since: int, work: Path, runs: int) -> list[float]:
    walls = []
    for index in range(runs):
        out = work / f"cold-{since}-{index}"
        out.mkdir()
        command = [
            sys.executable,
            "-m",
            "pytest",
            str(ROOT / "gates"),
            "-m",
            "phase2",
            "-p",
            "no:cacheprovider",
            "--rollout-env=staging",
            f"--rollout-at={rfc3339(END)}",
            f"--rollout-since={rfc3339(since)}",
            f"--rollout-decision-json={out / 'record.json'}",
            f"--html={out / 'report.html'}",
            "--self-contained-html",
        ]
        started = time.perf_counter()
        subprocess.run(command, cwd=work, env=env, capture_output=True, timeout=300)
        walls.append(time.perf_counter() - started)
    return walls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed requests per span (20)")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold pytest runs per span (3)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/serve_latency.json")
    args = parser.parse_args(argv)

    cached, history = build_tsdb(args.seed, fresh=False, workers=2)
    work = Path(tempfile.mkdtemp(prefix="rollout-serve-latency-"))
    shutil.copytree(cached, work / "tsdb")
    values = {
        k: bool(v) if k in ("dual_memory_types", "concept_formation") else v
        for k, v in PHASE2_FLAGS.items()
    }
    write_initial_flag_file(work / "flags.json", values)
    prometheus = start(
        work / "prometheus", config_yaml="global:\n  scrape_interval: 1m\n", tsdb=work / "tsdb"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROLLOUT_", "ENGRAM_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        ROLLOUT_ACTOR="serve-latency-benchmark",
        ROLLOUT_PROMETHEUS_URL=prometheus.url,
        ROLLOUT_FLAGS=f"flagd-file:{work / 'flags.json'}",
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve_log = (work / "serve.log").open("wb")
    serve = subprocess.Popen(
        [sys.executable, "-m", "pytest_rollout", "serve", "--gates", str(ROOT / "gates"),
         "--port", str(port), "--state-dir", str(work / "state"),
         "--", "--rollout-env=staging", f"--rollout-at={rfc3339(END)}"],
        cwd=work, env=env, stdout=serve_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    results: dict[str, Any] = {}
    try:
        ready_s = wait_healthy(url, serve)
        log(f"server ready in {ready_s:.1f} s at {url}; Prometheus {prometheus.url}")
        for name, since in SPANS.items():
            body = {"since": rfc3339(since)}
            warmup_s, first = post(f"{url}/v1/phases/phase2/evaluate", body)
            log(f"{name}: warm-up {warmup_s:.2f} s, {first['decision']}: {first['reason'][:120]}")
            walls, cpus, prom_cpus, decisions, loads = [], [], [], set(), []
            zygote = zygote_pid(serve.pid)
            for _ in range(args.runs):
                loads.append(os.getloadavg()[0])
                before = cpu_s(zygote, children=True), cpu_s(prometheus.pid, children=False)
                wall, answer = post(f"{url}/v1/phases/phase2/evaluate", body)
                walls.append(wall)
                cpus.append(cpu_s(zygote, children=True) - before[0])
                prom_cpus.append(cpu_s(prometheus.pid, children=False) - before[1])
                decisions.add(answer["decision"])
            gates = len(first["record"].get("gates", []))
            log(f"{name}: wall {summary(walls)}; gate-run CPU {summary(cpus)}")
            cold = cold_runs(env, since, work, args.cold_runs)
            log(f"{name}: cold pytest {summary(cold)}")
            results[name] = {
                "since": rfc3339(since),
                "gates_in_record": gates,
                "decisions": sorted(decisions),
                "warm_server": summary(walls),
                "warm_walls_s": [round(w, 3) for w in walls],
                "warmup_request_s": round(warmup_s, 3),
                # CPU seconds per request: the gate run (fork of the zygote) and Prometheus.
                # On a machine shared with other work, wall >= these; their sum estimates the
                # wall time on an idle machine of this speed.
                "gate_run_cpu_s": summary(cpus),
                "prometheus_cpu_s": summary(prom_cpus),
                "cpu_bound_wall_estimate_s": summary(
                    [a + b for a, b in zip(cpus, prom_cpus, strict=True)]
                ),
                "cold_pytest": summary(cold),
                "load_avg_1m": {"min": min(loads), "max": max(loads)},
                "met_goal_wall": quantile(walls, 0.95) <= GOAL_P95_S,
            }
    finally:
        os.kill(serve.pid, signal.SIGTERM)
        serve.wait(30)
        serve_log.close()
        prometheus.stop()
    report = {
        "benchmark": "benchmarks/serve_latency.py",
        "goal": f"POST /v1/phases/phase2/evaluate p95 <= {GOAL_P95_S} s on a warm server",
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "history": {k: history[k] for k in ("series", "samples", "scrape_interval_s", "end")},
        "server_ready_s": round(ready_s, 2),
        "spans": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    log(f"wrote {args.out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
