"""One gate run per phase at a time: concurrent requests for a phase share the running answer.

A decision is always one of GO / HOLD / ABORT with its exit code, read from the run's decision
record after its digest is verified. Anything else (a crash, a missing or altered record, a
timeout, an exit code that disagrees with the record) is HOLD with a reason: never GO on doubt.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_rollout.config import RolloutConfig
from pytest_rollout.decision import Decision
from pytest_rollout.files import write_text_atomically
from pytest_rollout.instants import rfc3339
from pytest_rollout.report.verify import verify_file
from pytest_rollout.serve.metrics import ServeMetrics
from pytest_rollout.serve.worker import WarmWorker
from pytest_rollout.settings import Settings

BY_EXIT = {d.exit_status: d for d in Decision}
LOG_TAIL_CHARS = 600


@dataclass
class ServeState:
    """What the server knows: its settings, where runs live, and each phase's latest answer."""

    gates: Path
    pytest_args: list[str]
    state_dir: Path
    config: RolloutConfig
    settings: Settings
    metrics: ServeMetrics
    timeout_s: float = 300.0
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def runs(self) -> Path:
        return self.state_dir / "runs"

    def run_dir(self, run_id: str) -> Path | None:
        """The folder of ``run_id``, or None when it is not a run of this server."""
        if not run_id.isalnum():  # ids are hex: no "..", no separators reach the file system
            return None
        path = self.runs / run_id
        return path if path.is_dir() else None

    def knows_phase(self, phase: str) -> bool:
        return phase in self.config.known_phases

    def remember(self, answer: dict[str, Any]) -> None:
        """The phase's latest decision, in memory and on disk (a restart keeps ABORT known)."""
        phase = str(answer["record"].get("phase") or answer.get("phase"))
        self.latest[phase] = answer
        self.metrics.decision.labels(phase=phase).set(answer["exit_code"])
        path = self.state_dir / "latest" / f"{phase}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, json.dumps(answer, sort_keys=True) + "\n")

    def load_latest(self) -> None:
        for path in sorted((self.state_dir / "latest").glob("*.json")):
            try:
                answer = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a damaged file only loses the memory of that phase's last answer
            self.latest[path.stem] = answer
            self.metrics.decision.labels(phase=path.stem).set(answer.get("exit_code", 1))


def answer_of(
    *, decision: Decision, reason: str, run_id: str, at: str, record: dict[str, Any], report: bool
) -> dict[str, Any]:
    """The JSON every decision endpoint returns."""
    return {
        "decision": decision.value,
        "exit_code": decision.exit_status,
        "reason": reason,
        "run_id": run_id,
        "at": at,
        "phase": record.get("phase"),
        "record": record,
        "report": f"/v1/runs/{run_id}/report.html" if report else None,
    }


def read_decision(exit_code: int, run_dir: Path) -> tuple[Decision, str, dict[str, Any]]:
    """(decision, reason, record) of a finished run; HOLD whenever the two sources disagree."""
    record_path = run_dir / "record.json"
    record: dict[str, Any] = {}
    problem = ""
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        problem = "the gate run wrote no decision record"
    except (OSError, ValueError) as exc:
        problem = f"the decision record {record_path} cannot be read: {exc}"
    if record and not problem and verify_file(record_path, out=io.StringIO(), quiet=True) != 0:
        problem = f"the decision record {record_path} fails its digest check (altered?)"
    if exit_code == -9:
        return Decision.HOLD, "gate run timed out and was killed; see its log", record
    by_exit = BY_EXIT.get(exit_code)
    if by_exit is None:
        why = f"gate run failed: exit {exit_code}"
        if record.get("reason"):
            why += f" ({record['reason']})"
        return Decision.HOLD, f"{why}; see {run_dir / 'pytest.log'}: {_tail(run_dir)}", record
    if problem:
        return Decision.HOLD, f"{problem} (exit {exit_code}); the answer is HOLD", record
    if record.get("decision") != by_exit.value:
        return (
            Decision.HOLD,
            f"the gate run exited {exit_code} ({by_exit.value}) but its record says "
            f"{record.get('decision')!r}; the answer is HOLD",
            record,
        )
    return by_exit, str(record.get("reason", "")), record


def _tail(run_dir: Path) -> str:
    try:
        text = (run_dir / "pytest.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return " ".join(text[-LOG_TAIL_CHARS:].split())


class Evaluator:
    """Single-flight per phase, at most ``max_parallel`` gate runs at once."""

    def __init__(self, state: ServeState, worker: WarmWorker, max_parallel: int) -> None:
        self.state = state
        self.worker = worker
        self.max_parallel = max_parallel
        self._running: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._slots: asyncio.Semaphore | None = None

    async def evaluate(self, phase: str, at: str | None, since: str | None) -> dict[str, Any]:
        """The phase's answer; joins the running evaluation of the phase if there is one."""
        running = self._running.get(phase)
        if running is None:
            running = asyncio.ensure_future(self._evaluate(phase, at, since))
            self._running[phase] = running
            running.add_done_callback(lambda _: self._running.pop(phase, None))
        # shield: a caller that hangs up must not cancel the run the others wait for
        try:
            return await asyncio.shield(running)
        except Exception as exc:  # a HOLD, not a 500: Argo aborts a rollout on errors
            return answer_of(
                decision=Decision.HOLD,
                reason=f"rollout serve could not run the gates: {type(exc).__name__}: {exc}; "
                "see the server's log",
                run_id="",
                at=rfc3339(time.time()),
                record={"phase": phase},
                report=False,
            )

    async def _evaluate(self, phase: str, at: str | None, since: str | None) -> dict[str, Any]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_parallel)
        async with self._slots:
            started = time.monotonic()
            run_id = uuid.uuid4().hex[:12]
            run_dir = self.state.runs / run_id
            run_dir.mkdir(parents=True)
            argv = self.argv(phase, run_dir, at, since)
            code = await asyncio.to_thread(
                self.worker.run, argv, run_dir / "pytest.log", timeout_s=self.state.timeout_s
            )
            decision, reason, record = read_decision(code, run_dir)
            elapsed = time.monotonic() - started
        metrics = self.state.metrics
        metrics.duration.labels(phase=phase).observe(elapsed)
        metrics.evaluations.labels(phase=phase, decision=decision.value).inc()
        for action in record.get("actions") or []:
            if isinstance(action, dict) and action.get("action") == "rollback":
                result = "verified" if action.get("result") == "verified" else "failed"
                metrics.rollbacks.labels(phase=phase, source="evaluate", result=result).inc()
        answer = answer_of(
            decision=decision,
            reason=reason,
            run_id=run_id,
            at=str(record.get("evaluated_at") or rfc3339(time.time())),
            record={**record, "phase": record.get("phase") or phase},
            report=(run_dir / "report.html").is_file(),
        )
        self.state.remember(answer)
        return answer

    def argv(self, phase: str, run_dir: Path, at: str | None, since: str | None) -> list[str]:
        """One look: the phase's gates, the record and the report into the run's folder."""
        extra: Sequence[str] = self.state.pytest_args
        pinned = [f"--rollout-at={at}"] if at else []
        begun = [f"--rollout-since={since}"] if since else []
        return [
            str(self.state.gates),
            "-m",
            phase,
            "-p",
            "no:cacheprovider",
            f"--rollout-decision-json={run_dir / 'record.json'}",
            f"--html={run_dir / 'report.html'}",
            "--self-contained-html",
            *extra,
            # after the passthrough arguments: the request's instant wins (argparse: last wins)
            *pinned,
            *begun,
        ]
