"""Alert to rollback on real parts: the staging stack in phase 2 with the rendered abort rules,
a real Alertmanager, and a real ``rollout serve`` that rolls the flag file back.

The order follows who needs whose address: ``rollout serve`` first (it only needs the flag
file's path), then Alertmanager routing abort alerts to it with the bearer token, then the
stack, whose Prometheus sends its alerts to that Alertmanager. Traffic runs one thread on the
treatment spaces and one on control spaces, so both cohorts carry the same rate whatever the
cohort percent. Shared by tests/controllers/test_alert_to_rollback.py and
benchmarks/alert_to_rollback.py; every process is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from pytest_rollout.config import load_config
from pytest_rollout.monitoring.render import render, write
from pytest_rollout.monitoring.settings import load_settings
from staging.client import EngramClient
from staging.seed import seed
from staging.stack import Stack
from tests import alertmanager_harness as am
from tests.serve.harness import TOKEN, Server, start_serve

ROOT = Path(__file__).resolve().parents[2]
GATES = ROOT / "gates"
CONFIG = GATES / "rollout.toml"
ALERT = "EngramRolloutP99Regression"
PHASE = "phase2"
# The alert rules tell phases apart by the production flag states (monitoring/settings.py: a
# rehearsal's cohort size must not reshuffle phases), so the canary runs at phase 2's own 5 %:
# with the ci profile's 50 % the rules would call it phase 4 and page phase4.
PHASE2_FLAGS: dict[str, bool | float] = {
    "dual_memory_types": True,
    "concept_formation": True,
    "blended_recall": 5,
}
SPACES = 120
CHAOS_LATENCY_MS = 80.0  # 4x the 20 ms abort threshold, under the 200 ms semantic timeout


def wait_until(
    what: str, check: Callable[[], object], timeout_s: float, poll_s: float = 0.25
) -> Any:
    """``check()``'s first truthy answer; AssertionError naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException, OSError, KeyError, ValueError):
            answer = check()
            if answer:
                return answer
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")


@dataclass
class Rig:
    stack: Stack
    client: EngramClient
    alertmanager: am.AlertmanagerServer
    serve: Server
    audit_log: Path
    treatment: list[str] = field(default_factory=list)
    control: list[str] = field(default_factory=list)

    def abort_alerts(self, states: tuple[str, ...] = ("pending", "firing")) -> list[dict[str, Any]]:
        """The stack Prometheus' abort alerts for phase 2 in one of ``states``."""
        answer = requests.get(f"{self.stack.prometheus_url}/api/v1/alerts", timeout=5)
        answer.raise_for_status()
        return [
            a
            for a in answer.json()["data"]["alerts"]
            if a["labels"].get("rollout_action") == "abort"
            and a["labels"].get("phase") == PHASE
            and a["state"] in states
        ]

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_log.exists():
            return []
        return [json.loads(line) for line in self.audit_log.read_text().splitlines() if line]


def _cohorts(url: str) -> tuple[list[str], list[str]]:
    """(treatment spaces, control spaces), as the service buckets them now."""
    treatment: list[str] = []
    control: list[str] = []
    with requests.Session() as http:
        for i in range(SPACES):
            space = f"space-{i:04d}"
            answer = http.post(
                f"{url}/api/v1/spaces/{space}/recall", json={"query": "coffee", "k": 5}, timeout=10
            )
            answer.raise_for_status()
            (treatment if answer.json()["group"] == "treatment" else control).append(space)
    return treatment, control


def _traffic(url: str, spaces: list[str], stop: threading.Event) -> None:
    with requests.Session() as http:
        for space in itertools.cycle(spaces):
            if stop.is_set():
                return
            try:
                http.post(
                    f"{url}/api/v1/spaces/{space}/recall",
                    json={"query": "coffee meeting project", "k": 5},
                    timeout=5,
                )
            except requests.RequestException:
                time.sleep(0.1)


@contextlib.contextmanager
def rig(
    workdir: Path,
    *,
    evaluation_interval: str = "1s",
    scrape_interval: str = "1s",
    abort_for_s: float | None = None,
) -> Iterator[Rig]:
    """The running rig, phase 2 live with traffic in both cohorts and no abort alert pending.

    The rules are the ci profile's (2-minute windows, ``for: 10s``); ``abort_for_s`` replaces
    the ``for`` (the benchmark's 30 s).
    """
    settings = load_settings(load_config(CONFIG), "ci")
    if abort_for_s is not None:
        settings = dataclasses.replace(settings, abort_for_s=abort_for_s)
    write(render(settings, "gates/rollout.toml"), workdir / "render" / "monitoring")
    stack_dir = workdir / "stack"
    stack_dir.mkdir(parents=True)
    flags = stack_dir / "flags.json"  # where Stack.up writes the flag file
    audit_log = workdir / "flags-audit.jsonl"
    serve_dir = workdir / "serve"
    serve_dir.mkdir()
    with contextlib.ExitStack() as cleanup:
        serve = start_serve(
            GATES,
            serve_dir,
            ["--rollout-env", "ci", f"--rollout-flags=flagd-file:{flags}"],
            # Not the ci profile's .staging/flags-audit.jsonl: that is the developer's stack.
            env={"ROLLOUT_FLAGS_AUDIT_LOG": str(audit_log)},
        )
        cleanup.callback(serve.stop)
        manager = am.start(workdir / "am", f"{serve.url}/v1/alertmanager", token=TOKEN)
        cleanup.callback(manager.stop)
        stack = Stack.up(
            stack_dir,
            initial_flags=PHASE2_FLAGS,
            repo_root=workdir / "render",
            formation_interval_s=0.5,
            twin=False,  # the twin feeds CPU and RSS alerts only; not this path
            alertmanager=f"127.0.0.1:{manager.port}",
            evaluation_interval=evaluation_interval,
            scrape_interval=scrape_interval,
            say=lambda _: None,
        )
        cleanup.callback(stack.down)
        seed(stack.engram_url, episodes=1200, spaces=SPACES, prefix="space", skew=0.0)
        treatment, control = _cohorts(stack.engram_url)
        assert treatment and control, f"5 % of {SPACES} spaces gave no treatment space"
        stop = threading.Event()
        workers = [
            threading.Thread(target=_traffic, args=(stack.engram_url, spaces, stop), daemon=True)
            for spaces in (treatment, control)
        ]
        for worker in workers:
            worker.start()

        def stop_traffic() -> None:
            stop.set()
            for worker in workers:
                worker.join(timeout=10)

        cleanup.callback(stop_traffic)
        running = Rig(
            stack,
            EngramClient(stack.engram_url, stack.admin_token),
            manager,
            serve,
            audit_log,
            treatment,
            control,
        )
        wait_until(
            "phase2 live, with the p99 of both cohorts recorded",
            lambda: (
                stack.query(f'job:rollout_phase:active{{phase="{PHASE}"}}')
                and {
                    r["metric"].get("group")
                    for r in stack.query("job_group:engram_recall_duration_seconds:p99_rate2m")
                }
                >= {"treatment", "control"}
            ),
            timeout_s=120,
            poll_s=1,
        )
        yield running
