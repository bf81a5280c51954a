"""Rehearse the dual-memory rollout end to end on the local staging stack.

    python scripts/rehearse.py --out out/main            # the README's main job
    python scripts/rehearse.py --out out/main --keep-up  # leave the stack running afterwards

It brings up the stack (service + Prometheus + flag file on 127.0.0.1), seeds episodes, drives
bounded traffic, saves a baseline, then walks the rollout with the real gates in the `ci`
environment (short windows, production thresholds):

  phase 0 -> GO, phase 1 -> GO, phase 2 -> GO, then a latency regression is injected into the
  treatment path and `pytest gates -m phase2 --rollout-on-abort=rollback` must exit 10 with the
  blended-recall flag verified off, treatment latency recovered and no episode lost.

Every step's decision record and HTML report land in --out; rehearsal.json sums it up. Exit 0
when every expectation held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pytest_rollout.config import load_config  # noqa: E402
from pytest_rollout.decision import Decision  # noqa: E402
from pytest_rollout.flags.registry import open_controller  # noqa: E402
from staging.stack import Stack  # noqa: E402

CONFIG = ROOT / "gates" / "rollout.toml"
ENV = "ci"
EXIT = {decision.value: decision.exit_status for decision in Decision}


def log(message: str) -> None:
    print(f"[rehearse {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Rehearsal:
    def __init__(self, out: Path, rps: float, spaces: int, skew: float) -> None:
        self.out = out
        self.rps, self.spaces, self.skew = rps, spaces, skew
        self.config = load_config(CONFIG)
        self.steps: list[dict[str, Any]] = []
        self.stack: Stack | None = None
        self.traffic: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}
        # One audit log for this rehearsal, shared with the gates it runs (and only this one,
        # so the rollback it checks for cannot be an older run's).
        self.audit_log = out / "flags-audit.jsonl"
        os.environ["ROLLOUT_FLAGS_AUDIT_LOG"] = str(self.audit_log)
        # Who acts, for the audit log and the reports (the runbook exports it too).
        os.environ.setdefault("ROLLOUT_ACTOR", "staging rehearsal (scripts/rehearse.py)")

    # -- the stack and its traffic --------------------------------------------------------
    def up(self) -> None:
        log("starting the staging stack (service, Prometheus, flag file) on 127.0.0.1")
        # Consolidation every 30 s: the reference service is so light that a 10 s cycle alone
        # is ~5 % of its CPU, right at shadow mode's CPU criterion (a real service is heavier).
        self.stack = Stack.up(self.out / "stack", formation_interval_s=30.0)
        # This process changes flags too (HTTP backend, token from the environment).
        os.environ.update(self.stack.env(flag_backend="http"))
        self.env = {
            **os.environ,
            "ROLLOUT_ENV": ENV,
            "ROLLOUT_BASELINE": str(self.out / "baseline.json"),
        }
        log(f"engram {self.stack.engram_url}, prometheus {self.stack.prometheus_url}")
        self.run(
            [
                "-m",
                "staging",
                "--workdir",
                str(self.out / "stack"),
                "seed",
                "--episodes",
                str(self.spaces * 5),
                "--spaces",
                str(self.spaces),
                "--skew",
                str(self.skew),
            ],
            "seed episodes",
        )

    def start_traffic(self, seconds: float) -> None:
        assert self.stack is not None
        log(
            f"driving traffic: {self.rps:g} req/s over {self.spaces} spaces for at most "
            f"{seconds:.0f}s"
        )
        log_file = (self.out / "traffic.log").open("ab")
        self.traffic = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "staging",
                "--workdir",
                str(self.out / "stack"),
                "traffic",
                "--duration",
                f"{int(seconds)}s",
                "--rps",
                str(self.rps),
                "--spaces",
                str(self.spaces),
                "--skew",
                str(self.skew),
                "--threads",
                "16",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        log_file.close()

    def down(self) -> None:
        if self.traffic is not None and self.traffic.poll() is None:
            os.kill(self.traffic.pid, signal.SIGTERM)
            self.traffic.wait(timeout=10)
        if self.stack is not None:
            self.stack.down()

    # -- helpers ---------------------------------------------------------------------------
    def run(self, args: list[str], what: str) -> int:
        log(f"{what}: python {' '.join(args)}")
        return subprocess.call([sys.executable, *args], cwd=ROOT, env=self.env)

    def flags(self, phase: str) -> Any:
        return open_controller(
            self.env["ROLLOUT_FLAGS"],
            audit_log=self.audit_log,
            actor="rehearsal",
            environment=ENV,
            phase=phase,
            run_id="rehearsal",
        )

    def set_phase_flags(self, phase: str) -> None:
        state = dict(self.config.phase(phase, ENV).flags)
        log(f"{phase}: flags -> {state}")
        self.flags(phase).set_many(state, reason=f"rehearsal: enter {phase}")

    def wait_window(self, phase: str, extra_s: float = 5.0) -> None:
        window = self.config.phase(phase, ENV).window_s
        log(f"{phase}: collecting one evaluation window ({window:.0f}s) of traffic")
        time.sleep(window + extra_s)

    def gates(self, phase: str, name: str, expect: str, *extra: str) -> dict[str, Any]:
        """Run a phase's gates as an operator would and compare the decision with ``expect``."""
        record_path = self.out / f"{name}.json"
        status = self.run(
            [
                "-m",
                "pytest",
                "gates",
                "-m",
                phase,
                "-p",
                "no:cacheprovider",
                "-q",
                f"--rollout-decision-json={record_path}",
                f"--html={self.out / name}.html",
                "--self-contained-html",
                *extra,
            ],
            f"{name}: gates of {phase}",
        )
        record = json.loads(record_path.read_text()) if record_path.exists() else {}
        step = {
            "step": name,
            "phase": phase,
            "expected": expect,
            "decision": record.get("decision"),
            "exit_status": status,
            "ok": record.get("decision") == expect and status == EXIT[expect],
            "reason": record.get("reason"),
            "actions": record.get("actions", []),
        }
        self.steps.append(step)
        log(
            f"{name}: {step['decision']} (exit {status}), expected {expect}: "
            f"{'ok' if step['ok'] else 'NOT AS EXPECTED'} — {step['reason']}"
        )
        return step

    def check(self, name: str, ok: bool, detail: Any) -> None:
        self.steps.append({"step": name, "ok": bool(ok), "detail": detail})
        log(f"{name}: {'ok' if ok else 'FAILED'} — {detail}")

    def probe_treatment(self, spaces: list[str] | None = None) -> dict[str, tuple[float, str]]:
        assert self.stack is not None
        names = spaces or [f"space-{i:04d}" for i in range(min(self.spaces, 300))]
        seen = {}
        with requests.Session() as http:
            for space in names:
                started = time.perf_counter()
                answer = http.post(
                    f"{self.stack.engram_url}/api/v1/spaces/{space}/recall",
                    json={"query": "rollout rehearsal probe", "k": 5},
                    timeout=10,
                )
                seen[space] = (time.perf_counter() - started, answer.json().get("group", "?"))
        return seen

    # -- the walk --------------------------------------------------------------------------
    def walk(self) -> None:
        assert self.stack is not None
        cfg = lambda p: self.config.phase(p, ENV)  # noqa: E731
        total = sum(cfg(p).window_s for p in ("phase0", "phase1", "phase2")) * 2 + 600
        self.start_traffic(total)

        self.set_phase_flags("phase0")
        self.wait_window("phase0")
        self.run(
            [
                "-m",
                "pytest_rollout",
                "baseline",
                "save",
                "--out",
                str(self.out / "baseline.json"),
                "--window",
                f"{int(cfg('phase0').window_s)}s",
            ],
            "save the pre-rollout baseline",
        )
        # The ci profile waives the 24-hour soak gates in rollout.toml (a rehearsal cannot
        # prove RSS growth under 1 %/h in seconds); the record lists them as waived.
        self.gates("phase0", "phase0", "GO")

        self.set_phase_flags("phase1")
        self.wait_window("phase1")
        # The ci profile waives shadow mode's CPU gates in rollout.toml, with the measured why.
        self.gates("phase1", "phase1", "GO")

        self.set_phase_flags("phase2")
        self.wait_window("phase2")
        self.gates("phase2", "phase2", "GO")

        before = self.stack_integrity()
        chaos_ms = self.config.threshold("chaos_latency_ms", "phase3")
        treatment = [s for s, (_, g) in self.probe_treatment().items() if g == "treatment"][:10]
        log(f"injecting {chaos_ms:g} ms into the blended (treatment) path")
        requests.post(
            f"{self.stack.engram_url}/api/v1/admin/chaos",
            headers=self.stack.admin_headers(),
            timeout=10,
            json={"latency_ms": chaos_ms, "error_rate": 0.0, "duration_s": 600},
        )
        time.sleep(min(cfg("phase2").window_s / 2, 60))
        abort = self.gates("phase2", "phase2-regression", "ABORT", "--rollout-on-abort=rollback")
        rollback = [a for a in abort["actions"] if a.get("action") == "rollback"]
        self.check(
            "rollback verified in the decision record",
            len(rollback) == 1 and rollback[0].get("result") == "verified",
            rollback,
        )
        flag_now = self.flags("phase2").snapshot().get("blended_recall")
        self.check("blended_recall is off after the rollback", flag_now == 0, flag_now)
        audit = (
            [json.loads(line) for line in self.audit_log.read_text().splitlines()]
            if self.audit_log.exists()
            else []
        )
        rollback_lines = [
            a
            for a in audit
            if a.get("kind") == "change"
            and a.get("flag") == "blended_recall"
            and a.get("after") == 0
            and "ABORT" in str(a.get("reason"))
        ]
        self.check(
            "the audit log records the rollback",
            len(rollback_lines) == 1,
            rollback_lines[-1] if rollback_lines else "no rollback line",
        )
        latencies = self.probe_treatment(treatment) if treatment else {}
        slowest = max((t for t, _ in latencies.values()), default=float("nan"))
        self.check(
            "treatment latency recovered after the rollback",
            bool(treatment) and slowest < chaos_ms / 1000 / 2,
            f"slowest former-treatment recall {slowest * 1000:.1f} ms "
            f"(chaos {chaos_ms:g} ms, {len(treatment)} spaces probed)",
        )
        after = self.stack_integrity()
        lost = {
            s: (v, after["spaces"].get(s, {}).get("episodes", 0))
            for s, v in ((s, d["episodes"]) for s, d in before["spaces"].items())
            if after["spaces"].get(s, {}).get("episodes", 0) < v
        }
        self.check(
            "no episode lost (RPO 0)",
            not lost,
            f"{before['episodes']} -> {after['episodes']} episodes; lost in {lost}",
        )
        requests.delete(
            f"{self.stack.engram_url}/api/v1/admin/chaos",
            headers=self.stack.admin_headers(),
            timeout=10,
        )

    def stack_integrity(self) -> dict[str, Any]:
        assert self.stack is not None
        answer: dict[str, Any] = requests.get(
            f"{self.stack.engram_url}/api/v1/dual_memory/integrity", timeout=30
        ).json()
        return answer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "out" / "main",
        help="where decision records, reports and rehearsal.json go",
    )
    parser.add_argument("--rps", type=float, default=300.0, help="traffic rate (req/s)")
    parser.add_argument("--spaces", type=int, default=1000, help="memory spaces in the traffic")
    parser.add_argument(
        "--skew", type=float, default=0.5, help="Zipf exponent of space activity (0 = uniform)"
    )
    parser.add_argument("--keep-up", action="store_true", help="leave the stack running")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    rehearsal = Rehearsal(out, args.rps, args.spaces, args.skew)
    started = time.monotonic()
    try:
        rehearsal.up()
        rehearsal.walk()
    finally:
        if not args.keep_up:
            rehearsal.down()
    ok = bool(rehearsal.steps) and all(step["ok"] for step in rehearsal.steps)
    summary = {
        "ok": ok,
        "seconds": round(time.monotonic() - started, 1),
        "environment": ENV,
        "steps": rehearsal.steps,
    }
    (out / "rehearsal.json").write_text(json.dumps(summary, indent=2) + "\n")
    log(
        f"rehearsal {'PASSED' if ok else 'FAILED'} in {summary['seconds']:.0f}s; "
        f"reports and decision records in {out}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
