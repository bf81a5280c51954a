"""pytest-rollout's pytest plugin: options, markers, fixtures, and wiring.

Module functions only wire things up: the run's state lives in :class:`RolloutSession`
(``session.py``, registered as a named plugin on the controller) and in ``config.stash``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Generator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_rollout import hookspecs
from pytest_rollout._state import (
    USER_PROPERTY,
    context_key,
    gate_key,
    gate_payload,
    marker_problem_key,
    outcome_key,
    selection_key,
    view_key,
)
from pytest_rollout.config import ConfigError, find_config, load_config
from pytest_rollout.context import RolloutContext
from pytest_rollout.durations import parse_duration
from pytest_rollout.fixtures import ab, baseline, flags, gate, phase, prom, rollout, soak
from pytest_rollout.gate import GateRecord
from pytest_rollout.instants import parse_instant, rfc3339
from pytest_rollout.marks import gate_of, is_gate_run, phases_in, unknown_markers
from pytest_rollout.outcomes import Inconclusive
from pytest_rollout.records import shout, unfinished_record, write_record
from pytest_rollout.report import register as register_report
from pytest_rollout.selection import Selection, waiver_for
from pytest_rollout.session import RolloutSession, merge_wins
from pytest_rollout.settings import (
    ENV_ENV,
    ENV_FLAGS,
    ENV_PROMETHEUS_URL,
    ENV_SINCE,
    OPT_AT,
    OPT_CONFIG,
    OPT_DECISION_JSON,
    OPT_ENV,
    OPT_FLAGS,
    OPT_ON_ABORT,
    OPT_PROMETHEUS_URL,
    OPT_SINCE,
    OPT_WINDOW,
    SettingsError,
    resolve_settings,
)

if TYPE_CHECKING:
    pass

__all__ = [  # the fixtures pytest finds here, and the option strings tests and docs import
    "ab",
    "baseline",
    "flags",
    "gate",
    "phase",
    "prom",
    "rollout",
    "soak",
    "OPT_AT",
    "OPT_CONFIG",
    "OPT_DECISION_JSON",
    "OPT_ENV",
    "OPT_FLAGS",
    "OPT_ON_ABORT",
    "OPT_PROMETHEUS_URL",
    "OPT_WINDOW",
    "OPT_SINCE",
]


# ---------------------------------------------------------------------------------------------
# options


FUTURE_TOLERANCE_S = 60.0  # clock skew between this machine and Prometheus we accept


def _validated_times(config: pytest.Config) -> tuple[float | None, float | None]:
    """(--rollout-at, --rollout-window) in seconds; checked here, not by argparse, so that a bad
    value still replaces the previous run's decision record with a HOLD."""
    at_text, window_text = config.getoption("rollout_at"), config.getoption("rollout_window")
    at = window = None
    if at_text is not None:
        try:
            at = parse_instant(str(at_text))
        except ValueError as exc:
            raise pytest.UsageError(f"{OPT_AT}: {exc}") from None
        if at > time.time() + FUTURE_TOLERANCE_S:
            raise pytest.UsageError(
                f"{OPT_AT}: {at_text} is in the future: a decision can only be made on data that "
                "exists; leave it out to evaluate now"
            )
    if window_text is not None:
        try:
            window = parse_duration(str(window_text))
        except ValueError as exc:
            raise pytest.UsageError(f"{OPT_WINDOW}: {exc}") from None
    _check_since(config, at)
    return at, window


def _check_since(config: pytest.Config, at: float | None) -> None:
    """--rollout-since / ROLLOUT_SINCE: a real instant before the evaluation instant."""
    given = config.getoption("rollout_since")
    name, text = (OPT_SINCE, given) if given else (ENV_SINCE, os.environ.get(ENV_SINCE))
    if not text:
        return
    try:
        since = parse_instant(str(text))
    except ValueError as exc:
        raise pytest.UsageError(f"{name}: {exc}") from None
    end = at if at is not None else time.time()
    if since > end:
        raise pytest.UsageError(
            f"{name}: {text} is after the evaluation instant {rfc3339(end)}: the phase start "
            "must be before the data it judges (RFC 3339 or unix seconds)"
        )


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
        help="evaluate as of this instant (RFC 3339 or unix seconds); default: now, "
        "pinned once per run. Re-use a report's value to reproduce its decision",
    )
    group.addoption(
        OPT_WINDOW,
        dest="rollout_window",
        metavar="DURATION",
        help="override every phase's evaluation window, e.g. 30m or 7d",
    )
    group.addoption(
        OPT_SINCE,
        dest="rollout_since",
        metavar="TIME",
        help="when the phase began (RFC 3339 or unix seconds): A/B gates count from here. "
        f"env: {ENV_SINCE}; default: the flag audit log, then the flag gauge in Prometheus "
        "(docs/phase-start.md)",
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


def _ini_and_cli(config: pytest.Config) -> tuple[dict[str, object | None], dict[str, object]]:
    """The settings given on the command line and in the ini file, by setting name."""
    names = {
        "environment": "rollout_env",
        "prometheus_url": "rollout_prometheus_url",
        "flags": "rollout_flags",
    }
    cli = {name: config.getoption(dest) for name, dest in names.items()}
    ini = {name: config.getini(dest) for name, dest in names.items()}
    return cli, ini


# ---------------------------------------------------------------------------------------------
# configure


@pytest.hookimpl(tryfirst=True)  # before pytest-html creates the report's folder
def pytest_configure(config: pytest.Config) -> None:
    try:
        _configure(config)
    except pytest.UsageError as exc:
        if not hasattr(config, "workerinput"):
            _record_usage_error(config, str(exc))
        raise


def _record_usage_error(config: pytest.Config, message: str) -> None:
    """Usage errors end the run before the session exists: the record still says HOLD."""
    path = config.getoption("rollout_decision_json")
    if not path:
        return
    record = unfinished_record(
        phase="+".join(phases_in(str(config.getoption("markexpr") or ""))) or "unspecified",
        reason=f"no decision: usage error (exit 4): {message}",
        at=time.time(),
        environment=None,
        extra={},
    )
    _, problem = write_record(path, record, uuid.uuid4().hex[:12])
    if problem:
        shout(problem)


def _check_report_paths(config: pytest.Config) -> None:
    """pytest-html crashes (INTERNALERROR, exit 3) on a report folder it cannot create, and a
    JUnit file that cannot be written stops every later sessionfinish hook (the HTML audit report
    is lost): refuse both as usage errors before any gate runs, which leaves a HOLD record."""
    for option, name in (("htmlpath", "--html"), ("xmlpath", "--junitxml")):
        value = config.getoption(option, None)
        if not value:
            continue
        parent = Path(value).expanduser().absolute().parent
        existing = next(p for p in (parent, *parent.parents) if p.exists())
        if not existing.is_dir():
            problem = f"{existing} is not a directory"
        elif not os.access(existing, os.W_OK):
            problem = f"{existing} is not writable"
        else:
            continue
        raise pytest.UsageError(
            f"pytest-rollout: {name} {value}: {problem}; choose a report path in a writable folder"
        )


def _configure(config: pytest.Config) -> None:
    at_option, window_option = _validated_times(config)
    config_path = config.getoption("rollout_config") or config.getini("rollout_config")
    cli, ini = _ini_and_cli(config)
    try:
        path = Path(config_path) if config_path else find_config(config.rootpath, config.args)
        rollout_config = load_config(path)
        settings = resolve_settings(cli, ini=ini, config=rollout_config)
    except (ConfigError, SettingsError) as exc:
        raise pytest.UsageError(f"pytest-rollout: {exc}") from None
    if settings.prometheus_url:
        from pytest_rollout.metrics.settings import validate_prometheus_url

        source = settings.origin.get("prometheus_url", "")
        source = OPT_PROMETHEUS_URL if source == "command line" else source
        try:
            validate_prometheus_url(settings.prometheus_url, source)
        except ValueError as exc:
            raise pytest.UsageError(f"pytest-rollout: {exc}") from None
    _check_report_paths(config)

    for key in rollout_config.known_phases:
        phase = rollout_config.phase(key)
        config.addinivalue_line(
            "markers", f"{key}: rollout gate of {key} ({phase.name}): {phase.description}"
        )
    config.addinivalue_line(
        "markers",
        "abort: this gate is an abort trigger: if it fails, the "
        "phase decision is ABORT and the rollout must be rolled back",
    )

    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and "rollout_at" in workerinput:
        at = float(workerinput["rollout_at"])  # the controller pinned it; every worker agrees
        run_id = str(workerinput["rollout_run_id"])
    else:
        at = at_option if at_option is not None else float(int(time.time()))
        run_id = uuid.uuid4().hex[:12]

    context = RolloutContext(
        config=rollout_config,
        environment=settings.environment,
        at=at,
        window_override_s=window_option,
        prometheus_url=settings.prometheus_url,
        flags_uri=settings.flags,
        on_abort=config.getoption("rollout_on_abort") or "none",
        run_id=run_id,
        settings=settings,
        since_option=config.getoption("rollout_since"),
    )
    config.stash[context_key] = context
    if workerinput is None:  # only the controller decides and writes reports
        session = RolloutSession(config, context)
        config.stash[view_key] = session
        config.pluginmanager.register(session, "rollout-session")
        register_report(config, session)  # HTML banner/columns/extras, JUnit properties


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist controller -> worker: share the pinned instant so all gates see the same data."""
    context = node.config.stash[context_key]
    node.workerinput["rollout_at"] = context.at
    node.workerinput["rollout_run_id"] = context.run_id


# ---------------------------------------------------------------------------------------------
# gates: kind, phase, outcome


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselect: see every gate of every phase
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Markers with arguments are a usage error, found before any gate runs; note every
    phase gate (for partial-run detection) and leave out the gates the environment waives."""
    problems = []
    for item in items:
        try:
            gate_of(item)
        except pytest.UsageError as exc:
            problems.append(str(exc))
            item.stash[gate_key] = GateRecord(nodeid=item.nodeid)
            item.stash[marker_problem_key] = str(exc)
    if is_gate_run(config):
        problems += unknown_markers(config, items)
    # On an xdist worker a UsageError here is an INTERNALERROR: the gate errors at setup instead.
    if problems and not hasattr(config, "workerinput"):
        raise pytest.UsageError("pytest-rollout: " + "; ".join(problems))
    context = config.stash[context_key]
    selection = config.stash.setdefault(selection_key, Selection())
    selection.named_by_node_id = any("::" in str(arg) for arg in config.args)
    kept, waived = [], []
    for item in items:
        phase = item.stash[gate_key].phase
        if phase is None:
            kept.append(item)
            continue
        selection.phase_of[item.nodeid] = phase
        reason = waiver_for(item.name, context.phase(phase).config.waived)
        if reason is None:
            kept.append(item)
        else:
            selection.waived[item.nodeid] = reason
            waived.append(item)
    if waived:
        items[:] = kept
        config.hook.pytest_deselected(items=waived)


def pytest_deselected(items: Sequence[pytest.Item]) -> None:
    if items:
        selection = items[0].config.stash.setdefault(selection_key, Selection())
        selection.deselected.update(item.nodeid for item in items)


@pytest.hookimpl(wrapper=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    """Send the worker's selection to the controller; keep a decided exit status when a report
    plugin (pytest-html writing to an unwritable path) fails after the decision."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # xdist worker -> controller: what collection left out
        selection = session.config.stash.get(selection_key, Selection())
        workeroutput["rollout_selection"] = json.dumps(selection.to_json())
        # The controller warns about an unknown actor once for the run, workers never do.
        workeroutput["rollout_wrote_flags"] = session.config.stash[context_key].wrote_flags()
    try:
        return (yield)
    except Exception as exc:
        view = session.config.stash.get(view_key, None)
        if view is None or view.record is None:
            raise
        shout(
            f"writing a report failed after the decision: {type(exc).__name__}: {exc}; "
            f"the exit status ({session.exitstatus}) still follows the decision"
        )
        return None


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
    gate = gate_of(item)
    outcome, reason = _outcome(report, call)
    if outcome == "inconclusive" and not report.skipped:
        report.longrepr = f"INCONCLUSIVE: {reason}"
    # The gate's outcome so far (setup, call, teardown merged), so that every report -- and
    # so the controller, the HTML report and JUnit -- carries the same final answer.
    merged = item.stash.get(outcome_key, None)
    if merged is None or merge_wins(merged[0], report.when, outcome):
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
