"""Alertmanager's webhook (payload version "4"): an abort alert rolls its phase back, once.

Every firing alert labelled ``rollout_action="abort"`` and ``phase="phaseN"`` applies that
phase's ``[phases.phaseN.rollback]`` state through the flag backend (the plugin's own
:func:`~pytest_rollout.session.default_rollback`: audit lines, read-back verification), posts
the communication webhook, and records an ABORT naming the alert. A fingerprint whose rollback
was verified is not rolled back again while it fires (Alertmanager re-sends firing alerts); a
failed one is retried on the next notification; once resolved, a new firing rolls back again.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from pytest_rollout.context import RolloutContext
from pytest_rollout.decision import Decision, build_record
from pytest_rollout.files import write_text_atomically
from pytest_rollout.flags.audit import default_actor
from pytest_rollout.instants import rfc3339
from pytest_rollout.serve.evaluate import ServeState, answer_of

ABORT_LABEL = "rollout_action"
ABORT_VALUE = "abort"


def _fingerprint(alert: Mapping[str, Any]) -> str:
    """Alertmanager's fingerprint; for a payload without one, a stable hash of the labels."""
    given = alert.get("fingerprint")
    if isinstance(given, str) and given:
        return given
    labels = json.dumps(alert.get("labels") or {}, sort_keys=True, default=str)
    return "labels-" + hashlib.sha256(labels.encode()).hexdigest()[:16]


class AlertHandler:
    """Turns notifications into rollbacks; one notification at a time (no double rollback)."""

    def __init__(self, state: ServeState) -> None:
        self.state = state
        self._lock = threading.Lock()
        self._done_path = state.state_dir / "alerts-rolled-back.json"
        self.done: set[str] = self._load_done()
        self.firing: dict[str, set[str]] = {}  # phase -> fingerprints of firing abort alerts

    def _load_done(self) -> set[str]:
        try:
            return set(json.loads(self._done_path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return set()

    def _save_done(self) -> None:
        self._done_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(self._done_path, json.dumps(sorted(self.done)) + "\n")

    def is_firing(self, phase: str) -> bool:
        return bool(self.firing.get(phase))

    def handle(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """What each abort alert of the notification led to (the response body)."""
        with self._lock:
            outcomes = []
            alerts = payload.get("alerts")
            for alert in alerts if isinstance(alerts, list) else []:
                if isinstance(alert, Mapping):
                    outcome = self._one(alert, str(payload.get("status") or "firing"))
                    if outcome is not None:
                        outcomes.append(outcome)
            return {"alerts": outcomes}

    def _one(self, alert: Mapping[str, Any], group_status: str) -> dict[str, Any] | None:
        labels = alert.get("labels")
        if not isinstance(labels, Mapping) or labels.get(ABORT_LABEL) != ABORT_VALUE:
            return None  # not ours: other receivers' alerts may share the route
        name = str(labels.get("alertname") or "<unnamed alert>")
        fingerprint = _fingerprint(alert)
        phase = str(labels.get("phase") or "")
        seen = {"alert": name, "fingerprint": fingerprint, "phase": phase or None}
        if not self.state.knows_phase(phase):
            known = ", ".join(self.state.config.known_phases)
            return {
                **seen,
                "result": "ignored",
                "message": f"label phase={phase!r} names no phase of {self.state.config.source} "
                f"(known: {known}); fix the alert rule's labels",
            }
        status = str(alert.get("status") or group_status)
        if status == "resolved":
            self.firing.get(phase, set()).discard(fingerprint)
            if fingerprint in self.done:  # a later firing is a new incident, not a replay
                self.done.discard(fingerprint)
                self._save_done()
            return {**seen, "result": "resolved"}
        self.firing.setdefault(phase, set()).add(fingerprint)
        if fingerprint in self.done:
            return {**seen, "result": "already rolled back"}
        answer = self._rollback(phase, name, fingerprint, alert)
        ok = answer["record"]["actions"][0].get("result") == "verified"
        self.state.metrics.rollbacks.labels(
            phase=phase, source="alert", result="verified" if ok else "failed"
        ).inc()
        self.state.metrics.evaluations.labels(phase=phase, decision="ABORT").inc()
        if ok:
            self.done.add(fingerprint)
            self._save_done()
        return {
            **seen,
            "result": "rolled back" if ok else "ROLLBACK FAILED",
            "run_id": answer["run_id"],
        }

    def _rollback(
        self, phase: str, name: str, fingerprint: str, alert: Mapping[str, Any]
    ) -> dict[str, Any]:
        from pytest_rollout.flags.notify import build_message, notify_webhook
        from pytest_rollout.session import default_rollback

        state, run_id, now = self.state, uuid.uuid4().hex[:12], time.time()
        context = RolloutContext(
            config=state.config,
            environment=state.settings.environment,
            at=now,
            window_override_s=None,
            prometheus_url=state.settings.prometheus_url,
            flags_uri=state.settings.flags,
            on_abort="rollback",
            run_id=run_id,
            settings=state.settings,
        )
        which = f"alert {name} (fingerprint {fingerprint})"
        rollback_state = dict(state.config.phase(phase, state.settings.environment).rollback)
        action = default_rollback(
            context,
            phase,
            rollback_state,
            reason=f"pytest-rollout serve: {phase} ABORT by {which}, source alert",
        )
        annotations = alert.get("annotations")
        summary = annotations.get("summary") if isinstance(annotations, Mapping) else None
        reason = f"{which} is firing" + (f": {summary}" if summary else "")
        if action.get("result") != "verified":
            reason += f"; ROLLBACK FAILED: {action.get('message', '')}"
        actions = [action]
        if state.settings.webhook:
            message = build_message(
                phase=phase,
                reason=reason,
                action="abort and rollback",
                who=default_actor(),
                environment=state.settings.environment,
            )
            error = notify_webhook(state.settings.webhook, message)
            actions.append(
                {
                    "action": "notify",
                    "at": rfc3339(time.time()),
                    "result": "failed" if error else "sent",
                    "message": error or "",
                }
            )
        record = build_record(
            phase=phase,
            decision=Decision.ABORT,
            reason=reason,
            evaluated_at=rfc3339(now),
            window={},
            environment=state.settings.environment,
            gates=[],
            flags={},
            actions=actions,
            extra={
                "source": "alert",
                "alert": {
                    "name": name,
                    "fingerprint": fingerprint,
                    "labels": dict(alert.get("labels") or {}),
                    "startsAt": alert.get("startsAt"),
                },
                "context": dict(context.describe()),
            },
        )
        run_dir = state.runs / run_id
        run_dir.mkdir(parents=True)
        write_text_atomically(run_dir / "record.json", json.dumps(record, indent=2) + "\n")
        answer = answer_of(
            decision=Decision.ABORT,
            reason=reason,
            run_id=run_id,
            at=record["evaluated_at"],
            record=record,
            report=False,
        )
        state.remember(answer)
        return answer
