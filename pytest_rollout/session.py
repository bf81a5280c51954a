"""The controller's side of a run: collect gate results, decide, act, record, tell people.

:class:`RolloutSession` is registered as a named plugin on the controller only (never on xdist
workers), like pytest-xdist's ``DSession``. It is the :class:`~pytest_rollout._state.RunView`
the report plugins read.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from pytest_rollout._state import gate_payload, selection_key
from pytest_rollout.context import RolloutContext
from pytest_rollout.decision import Decision, GateResult, build_record, decide
from pytest_rollout.instants import rfc3339
from pytest_rollout.marks import phases_in
from pytest_rollout.phase_hold import phase_evidence
from pytest_rollout.records import (
    UNFINISHED,
    clear_stale_record,
    shout,
    unfinished_record,
    write_record,
)
from pytest_rollout.selection import Selection, partial_reason
from pytest_rollout.settings import OPT_FLAGS
from pytest_rollout.signoffs import signoff_gates


class RolloutSession:
    """Controller-side state of one run (never instantiated on xdist workers)."""

    def __init__(self, config: pytest.Config, context: RolloutContext) -> None:
        self.config = config
        self.context = context
        self.results: dict[str, dict[str, Any]] = {}
        self.marked = False  # saw at least one gate with a phase or abort marker
        self.decision: Decision | None = None
        self.reason = ""
        self.record: dict[str, Any] | None = None
        self.actions: list[dict[str, Any]] = []
        self.flags_before: dict[str, Any] = {}
        self.flags_after: dict[str, Any] = {}
        self.workers_wrote_flags = False  # an xdist worker's gate changed flags (audited)
        self.problems: list[str] = []  # what went wrong around the decision (shown, never hidden)
        self.selection = config.stash.setdefault(selection_key, Selection())

    # -- which run is a rollout run -------------------------------------------------------
    def phases_asked(self) -> list[str]:
        expr = str(self.config.getoption("markexpr") or "")
        return phases_in(expr, self.context.config.known_phases)

    def secret_urls(self) -> list[str | None]:
        return [self.context.prometheus_url, self.context.flags_uri]

    @property
    def active(self) -> bool:
        """Rollout semantics apply when gates ran, a phase was asked for, or a record is wanted."""
        explicit = any(
            self.config.getoption(d)
            for d in ("rollout_decision_json", "rollout_at", "rollout_on_abort")
        )
        return self.marked or bool(self.phases_asked()) or explicit

    @property
    def phase_name(self) -> str:
        asked = self.phases_asked()
        seen = [r["phase"] for r in self.results.values() if r.get("phase")]
        phases = asked or list(dict.fromkeys(seen))
        return "+".join(phases) if phases else "unspecified"

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        # A previous run's GO must not outlive this run, whatever way this run ends.
        problem = clear_stale_record(self.config.getoption("rollout_decision_json"))
        if problem:
            self._problem(problem)
        if self.context.flags_uri:
            self.flags_before = self._snapshot()

    def _snapshot(self) -> dict[str, Any]:
        try:
            return dict(self.context.flag_controller().snapshot())
        except Exception as exc:  # a broken flag backend is recorded, it does not crash the run
            return {
                "error": f"cannot read flags via {self.context.flags_display}: "
                f"{type(exc).__name__}: {exc}"
            }

    # -- collecting ---------------------------------------------------------------------
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        payload = gate_payload(report)
        if payload is None:
            return
        if payload["phase"] or payload["kind"] == "abort":
            self.marked = True
        # Each report carries the merged outcome; the latest carries the fullest record.
        self.results[report.nodeid] = payload

    def gate_results(self) -> list[GateResult]:
        # Sorted: xdist delivers reports in any order; the record must not depend on it.
        return [
            GateResult(
                nodeid=n,
                kind=r["kind"],
                outcome=r["outcome"],
                reason=r["reason"],
                record=r["record"],
            )
            for n, r in sorted(self.results.items())
        ]

    # -- deciding -----------------------------------------------------------------------
    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        """xdist: what each worker's collection saw and left out (see selection.py)."""
        output = getattr(node, "workeroutput", {})
        data = output.get("rollout_selection")
        if data:
            self.selection.merge(json.loads(data))
        if output.get("rollout_wrote_flags"):
            self.workers_wrote_flags = True

    @pytest.hookimpl(tryfirst=True)  # decide before pytest-html and the terminal write reports
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.workers_wrote_flags or self.context.wrote_flags():
            self.context.warn_if_actor_unknown()  # the audit lines name the actor
        if not self.active:
            return
        if exitstatus in UNFINISHED:  # interrupted, internal error, usage error keep their codes
            self._record_unfinished(int(exitstatus))
            return
        phase_key = self.phase_name if self.phase_name in self.context.config.known_phases else None
        evidence, builtin = phase_evidence(self.context, phase_key) if self.results else ({}, [])
        if self.results:  # the phase's sign-offs are gates too (docs/signoffs.md)
            builtin += signoff_gates(self.context, phase_key)
        gates = self.gate_results() + builtin
        self.decision, self.reason = decide(gates)
        extra: dict[str, Any] = {"context": dict(self.context.describe()), **evidence}
        partial = self.selection.partial(self._decided_phases(), self.results)
        if partial is not None:
            extra["partial"] = partial
            why = partial_reason(self.phase_name, partial)
            if self.decision is Decision.GO:
                self.decision, self.reason = Decision.HOLD, why
            elif self.decision is Decision.HOLD:
                self.reason = f"{why}; {self.reason}"
        decided = set(self._decided_phases())
        waived = {
            n: r
            for n, r in self.selection.waived.items()
            if self.selection.phase_of.get(n) in decided and n not in self.results
        }
        if waived:
            extra["waived"] = waived
        if self.decision is Decision.ABORT and self.context.on_abort == "rollback":
            self._rollback()
        if self.decision is Decision.ABORT:
            self._notify("abort" if not self.actions else "abort and rollback")
        if self.context.flags_uri:
            self.flags_after = self._snapshot()
        self.record = build_record(
            phase=self.phase_name,
            decision=self.decision,
            reason=self.reason,
            evaluated_at=rfc3339(self.context.at),
            window=self.context.window(phase_key),
            environment=self.context.environment,
            gates=gates,
            flags={"before": self.flags_before, "after": self.flags_after},
            actions=self.actions,
            extra=extra,
        )
        self.context.warn_if_actor_unknown()  # the record names the operator
        # The exit status follows the decision whatever fails below (a hook, the record's disk).
        session.exitstatus = self.decision.exit_status
        try:
            self.config.hook.pytest_rollout_decision(config=self.config, record=self.record)
        except Exception as exc:
            self._problem(f"a pytest_rollout_decision hook failed: {type(exc).__name__}: {exc}")
        self._write(self.record)

    def _decided_phases(self) -> list[str]:
        return self.phases_asked() or [r["phase"] for r in self.results.values() if r["phase"]]

    def _write(self, record: dict[str, Any]) -> None:
        path = self.config.getoption("rollout_decision_json")
        if path:
            _, problem = write_record(path, record, self.context.run_id)
            if problem:
                self._problem(problem)

    def _problem(self, message: str) -> None:
        self.problems.append(message)
        shout(message)

    def _record_unfinished(self, exitstatus: int) -> None:
        """Exit 2/3/4 keep pytest's code; the record still says HOLD and why."""
        self.reason = (
            f"no decision: the run ended with exit {exitstatus}, {UNFINISHED[exitstatus]}; "
            "fix it and run the phase again"
        )
        self._write(
            unfinished_record(
                phase=self.phase_name,
                reason=self.reason,
                at=self.context.at,
                environment=self.context.environment,
                extra={"context": dict(self.context.describe())},
            )
        )
        self.context.warn_if_actor_unknown()  # the record names the operator

    def _rollback(self) -> None:
        phase = self.phase_name
        state = (
            dict(self.context.config.phase(phase, self.context.environment).rollback)
            if phase in self.context.config.phases
            else {}
        )
        action = self.config.hook.pytest_rollout_rollback(
            config=self.config, phase=phase, rollback_state=state
        )
        if action is None:
            action = {
                "action": "rollback",
                "at": rfc3339(time.time()),
                "result": "failed",
                "message": "no rollback implementation answered",
            }
        self.actions.append(dict(action))
        if action.get("result") != "verified":
            self.reason += f"; ROLLBACK FAILED: {action.get('message', '')}"

    def _notify(self, action: str) -> None:
        """The communication plan's webhook; failures are recorded, never raised."""
        url = self.context.settings.webhook
        if not url:
            return
        from pytest_rollout.flags.notify import build_message, notify_webhook

        payload = build_message(
            phase=self.phase_name,
            reason=self.reason,
            action=action,
            who=str(self.context.describe()["operator"]),
            environment=self.context.environment,
        )
        error = notify_webhook(url, payload)
        self.actions.append(
            {
                "action": "notify",
                "at": rfc3339(time.time()),
                "result": "failed" if error else "sent",
                "message": error or "",
            }
        )

    # -- telling people -----------------------------------------------------------------
    @pytest.hookimpl(trylast=True)  # after other plugins' sections: our line ends the summary
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.decision is None:
            return
        tr = terminalreporter
        tr.section(f"rollout {self.phase_name}: gates")
        for gate in self.gate_results():
            mark = {
                "pass": "PASS",
                "fail": "FAIL",
                "inconclusive": "INCONCLUSIVE",
                "error": "ERROR",
            }[gate.outcome]
            kind = "abort trigger" if gate.kind == "abort" else "criterion"
            tail = f" — {gate.reason}" if gate.reason else ""
            tr.write_line(f"{mark:<12} {kind:<13} {gate.nodeid}{tail}")
        for action in self.actions:
            tr.write_line(
                f"ACTION {action.get('action')}: {action.get('result')} "
                f"{action.get('message', '')}".rstrip()
            )
        tr.write_sep("=", self.headline(), bold=True, **self._colour())

    def headline(self) -> str:
        assert self.decision is not None
        return f"rollout {self.phase_name}: {self.decision.value} — {self.reason}"

    def _colour(self) -> dict[str, bool]:
        return {
            Decision.GO: {"green": True},
            Decision.HOLD: {"yellow": True},
            Decision.ABORT: {"red": True},
        }[self.decision or Decision.HOLD]

    @pytest.hookimpl(trylast=True)  # the built-in rollback: a conftest may answer first
    def pytest_rollout_rollback(
        self, config: pytest.Config, phase: str, rollback_state: dict[str, Any]
    ) -> dict[str, Any] | None:
        return default_rollback(self.context, phase, rollback_state)

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # Repeat the decision as the very last line, below pytest's own counts: in a CI log it
        # is the line a person reads first.
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if self.decision is not None and reporter is not None:
            reporter.write_line(self.headline(), bold=True, **self._colour())


def merge_wins(current: str, when: str, new: str) -> bool:
    """Does a later report (call/teardown) change the gate's outcome?

    Setup problems stand; a call outcome replaces a passed setup; a teardown error only
    replaces a pass (a failed abort trigger must stay a failure).
    """
    if when == "call":
        return current == "pass"
    if when == "teardown":
        return current == "pass" and new != "pass"
    return False


def default_rollback(
    context: RolloutContext,
    phase: str,
    rollback_state: dict[str, Any],
    *,
    reason: str | None = None,
) -> dict[str, Any]:
    """The built-in rollback: apply the phase's rollback state through the flag backend.

    ``reason`` goes into the audit lines (``rollout serve`` names the alert that asked for it);
    the default names the phase's ABORT and the run."""
    at = rfc3339(time.time())
    if not rollback_state:
        return {
            "action": "rollback",
            "at": at,
            "result": "failed",
            "message": f"phase {phase!r} has no [phases.{phase}.rollback] state in "
            f"{context.config.source}: nothing to roll back to, roll back by hand",
        }
    if not context.flags_uri:
        return {
            "action": "rollback",
            "at": at,
            "result": "failed",
            "message": f"no flag backend: pass {OPT_FLAGS} or set flags in "
            "[environments.<env>] to let pytest-rollout roll back",
        }
    return _flag_rollback(
        context,
        phase,
        rollback_state,
        reason or f"pytest-rollout: {phase} ABORT (run {context.run_id})",
    )


def _flag_rollback(
    context: RolloutContext, phase: str, rollback_state: dict[str, Any], reason: str
) -> dict[str, Any]:
    """Apply and verify the rollback state through the flag backend, by read-back."""
    from pytest_rollout.flags.rollback import perform_rollback

    try:
        controller = context.flag_controller(phase)  # its audit lines say which phase aborted
    except Exception as exc:
        return {
            "action": "rollback",
            "at": rfc3339(time.time()),
            "result": "failed",
            "message": f"cannot open flag backend {context.flags_display}: {exc}",
        }
    result = perform_rollback(controller, rollback_state, reason=reason)
    return result.to_json()
