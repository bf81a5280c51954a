"""pytest-rollout's pytest plugin: options, markers, fixtures and the phase decision.

Module functions only wire things up; the run's state lives in :class:`RolloutSession`
(registered as a named plugin on the controller) and in ``config.stash``.
"""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from collections.abc import Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rollout import hookspecs
from pytest_rollout.config import DEFAULT_PHASES, ConfigError, find_config, load_config
from pytest_rollout.context import PhaseView, RolloutContext
from pytest_rollout.decision import Decision, GateResult, build_record, decide
from pytest_rollout.durations import parse_duration
from pytest_rollout.gate import GateRecord
from pytest_rollout.instants import parse_instant, rfc3339
from pytest_rollout.outcomes import Inconclusive
from pytest_rollout.report import register as register_report

if TYPE_CHECKING:
    from pytest_rollout.flags.base import FlagController
    from pytest_rollout.load.baseline import BaselineComparator
    from pytest_rollout.load.runner import SoakRunner
    from pytest_rollout.metrics.prometheus import PromQuery

# Option strings: tests and docs import these instead of spelling them again.
OPT_CONFIG = "--rollout-config"
OPT_ENV = "--rollout-env"
OPT_PROMETHEUS_URL = "--rollout-prometheus-url"
OPT_AT = "--rollout-at"
OPT_WINDOW = "--rollout-window"
OPT_DECISION_JSON = "--rollout-decision-json"
OPT_FLAGS = "--rollout-flags"
OPT_ON_ABORT = "--rollout-on-abort"

ENV_ENV = "ROLLOUT_ENV"
ENV_PROMETHEUS_URL = "ROLLOUT_PROMETHEUS_URL"
ENV_FLAGS = "ROLLOUT_FLAGS"
ENV_BASELINE = "ROLLOUT_BASELINE"

USER_PROPERTY = "rollout_gate"  # key of the user_properties entry carrying a gate's result

context_key = pytest.StashKey[RolloutContext]()
gate_key = pytest.StashKey[GateRecord]()
outcome_key = pytest.StashKey[tuple[str, str]]()
session_key = pytest.StashKey["RolloutSession"]()


# ---------------------------------------------------------------------------------------------
# options


def _duration_option(value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise pytest.UsageError(f"{OPT_WINDOW}: {exc}") from None


def _instant_option(value: str) -> float:
    try:
        return parse_instant(value)
    except ValueError as exc:
        raise pytest.UsageError(f"{OPT_AT}: {exc}") from None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rollout", "progressive rollout gates (pytest-rollout)")
    group.addoption(
        OPT_CONFIG,
        dest="rollout_config",
        metavar="PATH",
        help="rollout.toml (default: rollout.toml or gates/rollout.toml in rootdir, "
        "or [tool.pytest_rollout] in pyproject.toml). ini: rollout_config",
    )
    group.addoption(
        OPT_ENV,
        dest="rollout_env",
        metavar="NAME",
        help=f"environment profile in rollout.toml. env: {ENV_ENV}; ini: rollout_env",
    )
    group.addoption(
        OPT_PROMETHEUS_URL,
        dest="rollout_prometheus_url",
        metavar="URL",
        help="PromQL HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics). "
        f"env: {ENV_PROMETHEUS_URL}; credentials only from ROLLOUT_PROMETHEUS_TOKEN, "
        "ROLLOUT_PROMETHEUS_USER/PASSWORD, ROLLOUT_PROMETHEUS_CA_BUNDLE",
    )
    group.addoption(
        OPT_AT,
        dest="rollout_at",
        metavar="TIME",
        type=_instant_option,
        help="evaluate as of this instant (RFC 3339 or unix seconds); default: now, "
        "pinned once per run. Re-use a report's value to reproduce its decision",
    )
    group.addoption(
        OPT_WINDOW,
        dest="rollout_window",
        metavar="DURATION",
        type=_duration_option,
        help="override every phase's evaluation window, e.g. 30m or 7d",
    )
    group.addoption(
        OPT_DECISION_JSON,
        dest="rollout_decision_json",
        metavar="PATH",
        help="write the decision record (JSON, with sha256 digest) here",
    )
    group.addoption(
        OPT_FLAGS,
        dest="rollout_flags",
        metavar="URI",
        help="flag backend, e.g. flagd-file:flags.json or http://host:port. "
        f"env: {ENV_FLAGS}; ini: rollout_flags",
    )
    group.addoption(
        OPT_ON_ABORT,
        dest="rollout_on_abort",
        choices=("none", "rollback"),
        default=None,
        help="on ABORT, run the phase's rollback and record it (default: none)",
    )
    parser.addini("rollout_config", "path of rollout.toml", default="")
    parser.addini("rollout_env", "environment profile in rollout.toml", default="")
    parser.addini("rollout_prometheus_url", "PromQL HTTP API URL", default="")
    parser.addini("rollout_flags", "flag backend URI", default="")


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hookspecs)


def _setting(config: pytest.Config, dest: str, env: str | None) -> str | None:
    """CLI > environment variable > ini; rollout.toml is consulted by the caller after this."""
    value = config.getoption(dest)
    if value:
        return str(value)
    if env and os.environ.get(env):
        return os.environ[env]
    ini = config.getini(dest)
    return str(ini) if ini else None


# ---------------------------------------------------------------------------------------------
# configure


def pytest_configure(config: pytest.Config) -> None:
    config_path = _setting(config, "rollout_config", None)
    try:
        path = Path(config_path) if config_path else find_config(config.rootpath, config.args)
        rollout_config = load_config(path)
    except ConfigError as exc:
        raise pytest.UsageError(f"pytest-rollout: {exc}") from None

    for key in dict.fromkeys([*DEFAULT_PHASES, *rollout_config.phases]):
        phase = rollout_config.phase(key)
        config.addinivalue_line(
            "markers", f"{key}: rollout gate of {key} ({phase.name}): {phase.description}"
        )
    config.addinivalue_line(
        "markers",
        "abort: this gate is an abort trigger: if it fails, the "
        "phase decision is ABORT and the rollout must be rolled back",
    )

    environment = _setting(config, "rollout_env", ENV_ENV) or rollout_config.default_environment
    if (
        environment
        and rollout_config.environments
        and environment not in rollout_config.environments
    ):
        known = ", ".join(sorted(rollout_config.environments))
        raise pytest.UsageError(
            f"pytest-rollout: {OPT_ENV}={environment!r} is not an "
            f"environment in {rollout_config.source} (known: {known})"
        )
    env_cfg = rollout_config.environments.get(environment or "")

    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "rollout_at" in workerinput:
        at = float(workerinput["rollout_at"])  # the controller pinned it; every worker agrees
        run_id = str(workerinput["rollout_run_id"])
    else:
        at_option = config.getoption("rollout_at")
        at = float(at_option) if at_option is not None else float(int(time.time()))
        run_id = uuid.uuid4().hex[:12]

    context = RolloutContext(
        config=rollout_config,
        environment=environment,
        at=at,
        window_override_s=config.getoption("rollout_window"),
        prometheus_url=_setting(config, "rollout_prometheus_url", ENV_PROMETHEUS_URL)
        or (env_cfg.prometheus_url if env_cfg else None),
        flags_uri=_setting(config, "rollout_flags", ENV_FLAGS)
        or (env_cfg.flags if env_cfg else None),
        on_abort=config.getoption("rollout_on_abort") or "none",
        run_id=run_id,
    )
    config.stash[context_key] = context
    register_report(config)  # HTML banner/columns/extras, JUnit properties; no-op on workers
    if workerinput is None:
        session = RolloutSession(config, context)
        config.stash[session_key] = session
        config.pluginmanager.register(session, "rollout-session")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller -> worker: share the pinned instant so all gates see the same data."""
    context = node.config.stash[context_key]
    node.workerinput["rollout_at"] = context.at
    node.workerinput["rollout_run_id"] = context.run_id


# ---------------------------------------------------------------------------------------------
# gates: kind, phase, outcome


def _phase_of(item: pytest.Item, context: RolloutContext) -> str | None:
    known = set(DEFAULT_PHASES) | set(context.config.phases)
    for marker in item.iter_markers():
        if marker.name in known:
            if marker.args or marker.kwargs:
                raise pytest.UsageError(
                    f"{item.nodeid}: @pytest.mark.{marker.name} takes no arguments"
                )
            return marker.name
    return None


def _kind_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("abort")
    if marker is None:
        return "criterion"
    if marker.args or marker.kwargs:
        raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.abort takes no arguments")
    return "abort"


def _gate_of(item: pytest.Item) -> GateRecord:
    if gate_key not in item.stash:
        context = item.config.stash[context_key]
        item.stash[gate_key] = GateRecord(
            nodeid=item.nodeid, kind=_kind_of(item), phase=_phase_of(item, context)
        )
    return item.stash[gate_key]


marker_problem_key = pytest.StashKey[str]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers with arguments are a usage error, found before any gate runs."""
    problems = []
    for item in items:
        try:
            _gate_of(item)
        except pytest.UsageError as exc:
            problems.append(str(exc))
            item.stash[gate_key] = GateRecord(nodeid=item.nodeid)
            item.stash[marker_problem_key] = str(exc)
    # On an xdist worker a UsageError here is an INTERNALERROR: the gate errors at setup instead.
    if problems and not hasattr(config, "workerinput"):
        raise pytest.UsageError("pytest-rollout: " + "; ".join(problems))


def pytest_runtest_setup(item: pytest.Item) -> None:
    if marker_problem_key in item.stash:
        raise pytest.UsageError(item.stash[marker_problem_key])


def _outcome(report: pytest.TestReport, call: pytest.CallInfo[None]) -> tuple[str, str]:
    if report.passed:
        return "pass", ""
    excinfo = call.excinfo
    if report.skipped:
        # A skipped gate checked nothing: fail closed.
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else "skipped"
        return "inconclusive", f"gate skipped, nothing was checked: {reason}"
    if excinfo is not None and isinstance(excinfo.value, Inconclusive):
        return "inconclusive", excinfo.value.reason
    if report.when == "call" and excinfo is not None and isinstance(excinfo.value, AssertionError):
        return "fail", _first_line(str(excinfo.value)) or "assertion failed"
    if excinfo is not None:
        text = _first_line(str(excinfo.value))
        where = {"setup": "setting up", "call": "running", "teardown": "tearing down"}.get(
            report.when, report.when
        )
        return "error", f"error while {where} the gate: {type(excinfo.value).__name__}: {text}"
    return "error", f"{report.when} failed"


def _first_line(text: str) -> str:
    for line in text.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    gate = _gate_of(item)
    outcome, reason = _outcome(report, call)
    if outcome == "inconclusive" and not report.skipped:
        report.longrepr = f"INCONCLUSIVE: {reason}"
    # The gate's outcome so far (setup, call, teardown merged), so that every report -- and
    # so the controller, the HTML report and JUnit -- carries the same final answer.
    merged = item.stash.get(outcome_key, None)
    if merged is None or _merge_wins(merged[0], report.when, outcome):
        merged = (outcome, reason)
        item.stash[outcome_key] = merged
    payload = {
        "when": report.when,
        "kind": gate.kind,
        "phase": gate.phase,
        "outcome": merged[0],
        "reason": merged[1],
        "record": gate.to_dict(),
    }
    # user_properties survive xdist serialisation; the controller reads them back.
    report.user_properties.append((USER_PROPERTY, json.dumps(payload)))
    return report


def gate_payload(report: pytest.TestReport) -> dict[str, Any] | None:
    """The gate result a report carries, if any (works on the controller under xdist)."""
    # Collection reports reach pytest_report_teststatus too and have no user_properties.
    for key, value in getattr(report, "user_properties", ()):
        if key == USER_PROPERTY:
            data: dict[str, Any] = json.loads(value)
            return data
    return None


def pytest_report_teststatus(
    report: pytest.TestReport, config: pytest.Config
) -> tuple[str, str, tuple[str, dict[str, bool]]] | None:
    payload = gate_payload(report)
    if (
        payload
        and payload["outcome"] == "inconclusive"
        and report.when in ("setup", "call")
        and report.failed
    ):
        return "inconclusive", "I", ("INCONCLUSIVE", {"yellow": True})
    return None


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def rollout(pytestconfig: pytest.Config) -> RolloutContext:
    """The run's shared context: config, environment, pinned instant, backends."""
    return pytestconfig.stash[context_key]


@pytest.fixture
def gate(request: pytest.FixtureRequest) -> GateRecord:
    """This gate's record: call ``gate.observe(metric=..., observed=..., threshold=...)``."""
    return _gate_of(request.node)


@pytest.fixture
def phase(request: pytest.FixtureRequest, rollout: RolloutContext) -> PhaseView:
    """Settings of the phase this gate is marked with (window, min samples, thresholds)."""
    key = _phase_of(request.node, rollout)
    if key is None:
        raise LookupError(
            f"{request.node.nodeid} has no phase marker; add e.g. "
            "@pytest.mark.phase2 (or pytestmark = pytest.mark.phase2)"
        )
    return rollout.phase(key)


@pytest.fixture
def prom(rollout: RolloutContext, gate: GateRecord) -> PromQuery:
    """Prometheus at the pinned instant; empty, NaN, stale or failing queries -> inconclusive."""
    from pytest_rollout.metrics.prometheus import PromQuery

    return PromQuery(rollout.prometheus(), gate)


@pytest.fixture(scope="session")
def flags(rollout: RolloutContext) -> FlagController:
    """The flag backend of this environment (read flags, snapshot; changes are audited)."""
    return rollout.flag_controller()


@pytest.fixture
def soak(tmp_path: Path) -> SoakRunner:
    """Runs Locust soaks in a subprocess: ``soak.run(SoakConfig(...))`` -> SoakResult."""
    from pytest_rollout.load.runner import SoakRunner

    return SoakRunner(tmp_path / "soak")


@pytest.fixture
def baseline(prom: PromQuery, gate: GateRecord, rollout: RolloutContext) -> BaselineComparator:
    """Compares the gate's window with a saved baseline (``rollout baseline save``).

    The file: ROLLOUT_BASELINE, else ``baseline`` of the environment in rollout.toml.
    """
    from pytest_rollout.load.baseline import BaselineComparator

    path = os.environ.get(ENV_BASELINE) or rollout.env.baseline
    return BaselineComparator(prom, gate=gate, default_path=Path(path) if path else None)


@pytest.fixture
def ab(
    request: pytest.FixtureRequest,
    prom: PromQuery,
    gate: GateRecord,
    phase: PhaseView,
    rollout: RolloutContext,
) -> Any:
    """A/B comparisons of treatment against control over the phase's window."""
    from pytest_rollout.ab import AB, ABSettings
    from pytest_rollout.durations import format_duration

    cfg = rollout.config
    family = 1
    if phase.config.holm:
        # Holm's first step (alpha / k) over the phase's A/B gates: each gate runs alone and
        # cannot see the others' p-values. Every xdist worker collects all items, so k agrees.
        family = max(
            1,
            sum(
                1
                for item in request.session.items
                if "ab" in getattr(item, "fixturenames", ())
                and _phase_of(item, rollout) == phase.key
            ),
        )
    settings = ABSettings(
        group_label=cfg.group_label,
        control=cfg.control,
        treatment=cfg.treatment,
        window=format_duration(phase.window_s),
        min_samples=phase.config.min_samples,
        alpha=phase.config.alpha,
        sequential=phase.config.sequential,
        holm_family_size=family,
    )
    return AB(prom, gate, settings)


# ---------------------------------------------------------------------------------------------
# the controller: collect gate results, decide, write the record, set the exit status


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

    # -- which run is a rollout run -------------------------------------------------------
    def phases_asked(self) -> list[str]:
        expr = self.config.getoption("markexpr") or ""
        known = list(dict.fromkeys([*DEFAULT_PHASES, *self.context.config.phases]))
        return [k for k in known if re.search(rf"\b{re.escape(k)}\b", expr)]

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
    @pytest.hookimpl(tryfirst=True)  # decide before pytest-html and the terminal write reports
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.active:
            return
        if exitstatus in (2, 3, 4):  # interrupted, internal error, usage error keep their codes
            return
        gates = self.gate_results()
        self.decision, self.reason = decide(gates)
        if self.decision is Decision.ABORT and self.context.on_abort == "rollback":
            self._rollback()
        if self.decision is Decision.ABORT:
            self._notify("abort" if not self.actions else "abort and rollback")
        if self.context.flags_uri:
            self.flags_after = self._snapshot()
        phase_key = (
            self.phase_name
            if self.phase_name in self.context.config.phases or self.phase_name in DEFAULT_PHASES
            else None
        )
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
            extra={"context": dict(self.context.describe())},
        )
        self.config.hook.pytest_rollout_decision(config=self.config, record=self.record)
        path = self.config.getoption("rollout_decision_json")
        if path:
            out = Path(path)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(out.suffix + ".tmp")
            tmp.write_text(json.dumps(self.record, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, out)
        session.exitstatus = self.decision.exit_status

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
        url = self.context.env.webhook
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

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        # Repeat the decision as the very last line, below pytest's own counts: in a CI log it
        # is the line a person reads first.
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if self.decision is not None and reporter is not None:
            reporter.write_line(self.headline(), bold=True, **self._colour())


def _merge_wins(current: str, when: str, new: str) -> bool:
    """Does a later report (call/teardown) change the gate's outcome?

    Setup problems stand; a call outcome replaces a passed setup; a teardown error only
    replaces a pass (a failed abort trigger must stay a failure).
    """
    if when == "call":
        return current == "pass"
    if when == "teardown":
        return current == "pass" and new != "pass"
    return False


@pytest.hookimpl(trylast=True)  # the built-in rollback: a conftest may answer first
def pytest_rollout_rollback(
    config: pytest.Config, phase: str, rollback_state: dict[str, Any]
) -> dict[str, Any] | None:
    context = config.stash[context_key]
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
    return _flag_rollback(context, phase, rollback_state)


def _flag_rollback(
    context: RolloutContext, phase: str, rollback_state: dict[str, Any]
) -> dict[str, Any]:
    """Apply and verify the rollback state through the flag backend, by read-back."""
    from pytest_rollout.flags.rollback import perform_rollback

    try:
        controller = context.flag_controller()
    except Exception as exc:
        return {
            "action": "rollback",
            "at": rfc3339(time.time()),
            "result": "failed",
            "message": f"cannot open flag backend {context.flags_display}: {exc}",
        }
    result = perform_rollback(
        controller, rollback_state, reason=f"pytest-rollout: {phase} ABORT (run {context.run_id})"
    )
    return result.to_json()
