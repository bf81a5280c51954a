"""The phase start ("since"): where a phase's A/B evidence begins.

Every A/B comparison runs over [phase start, pinned instant].  The start comes from, in order:
``--rollout-since``, ``ROLLOUT_SINCE``, the flag audit log (the last change that put the phase's
flags at their configured values), then the flag gauge in Prometheus (the first sample after the
last one that disagreed).  When none resolves, or a source contradicts the phase, the result
carries a ``problem`` and the A/B gates are inconclusive: never a sliding window instead.
See docs/phase-start.md.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_rollout.durations import format_duration
from pytest_rollout.flags.audit import AuditedChange, AuditLog, reconcile
from pytest_rollout.flags.audit_chain import verify_chain
from pytest_rollout.flags.base import FlagBackendError
from pytest_rollout.instants import parse_instant, rfc3339
from pytest_rollout.outcomes import Inconclusive
from pytest_rollout.settings import ENV_FLAGS_AUDIT_LOG, ENV_SINCE, OPT_AT, OPT_SINCE

if TYPE_CHECKING:
    from pytest_rollout.metrics.prometheus import PromQuery

# How far back the flag gauge is searched when the backend's retention is not known.
MAX_LOOKBACK_S = 35 * 86400.0
# Points per range query: under Prometheus' limit of 11,000 per series, with a margin.
MAX_POINTS = 10_000
# A change whose outcome is unknown is evaluated both ways; more than this many is a problem.
MAX_UNCERTAIN = 6
# How long after the last wrong sample each replica's first right sample is looked for.
SETTLE_S = 600
_TOLERANCE = 1e-6
_TOOK_EFFECT = ("verified", "applied")
_DID_NOT = ("failed", "not-applied")


@dataclass(frozen=True)
class PhaseStart:
    """Where the phase's evidence starts, which source said so, and what keeps it from use."""

    since: float | None  # unix seconds; None when unresolved
    source: str  # "option" | "env" | "audit-log" | "prometheus" | "none"
    detail: str  # human text: the option, the audit change, or the PromQL used
    problem: str | None = None  # set when the A/B gates must be inconclusive; says how to fix


def parse_since(text: str, *, name: str) -> float:
    """Unix seconds from RFC 3339 or unix seconds; a usage error naming ``name`` otherwise."""
    try:
        return parse_instant(text)
    except ValueError as exc:
        raise pytest.UsageError(f"{name}: {exc}") from None


def resolve_phase_start(
    *,
    phase: str,
    phase_flags: Mapping[str, bool | float],
    at: float,
    option: str | None,
    env: Mapping[str, str],
    audit_log: Path | None,
    prom: PromQuery | None,
    flag_metric: str = "engram_feature_flag",
    retention_s: float | None = None,
    now: float | None = None,
) -> PhaseStart:
    """The phase start from the first source that has one (see the module docstring).

    A bad, future or post-``at`` time given by hand is a ``pytest.UsageError``; everything
    else that keeps the start from being known comes back as ``PhaseStart.problem``.
    """
    now = time.time() if now is None else now
    given = [(OPT_SINCE, "option", option)]
    if env.get(ENV_SINCE, "").strip():
        given.append((ENV_SINCE, "env", env[ENV_SINCE]))
    for name, source, text in given:
        if text is None:
            continue
        since = parse_since(text, name=name)
        _check_given(since, name=name, text=text, at=at, now=now)
        detail = (
            f"{OPT_SINCE} {text.strip()}" if source == "option" else f"{ENV_SINCE}={text.strip()}"
        )
        return _within_retention(PhaseStart(since, source, detail), at, retention_s)
    notes = [f"neither {OPT_SINCE} nor {ENV_SINCE} given"]
    if not phase_flags:
        notes.append(f"[phases.{phase}.flags] is empty, so no flag change marks its start")
        return _unresolved(phase, flag_metric, notes)
    if audit_log is None:
        notes.append(f"no audit_log configured ({ENV_FLAGS_AUDIT_LOG})")
    else:
        found = _from_audit_log(phase, phase_flags, at, audit_log)
        if isinstance(found, PhaseStart):
            return _within_retention(found, at, retention_s)
        notes.append(found)
    if prom is None:
        notes.append("no Prometheus to read the flag gauge from")
    else:
        lookback = min(retention_s or MAX_LOOKBACK_S, MAX_LOOKBACK_S)
        gauge = _from_prometheus(phase, phase_flags, at, prom, flag_metric, lookback)
        if isinstance(gauge, PhaseStart):
            return _within_retention(gauge, at, retention_s)
        notes.append(gauge)
    return _unresolved(phase, flag_metric, notes)


def _check_given(since: float, *, name: str, text: str, at: float, now: float) -> None:
    if since > now:
        raise pytest.UsageError(
            f"{name} {text.strip()!r} ({rfc3339(since)}) is in the future (now "
            f"{rfc3339(now)}): give the time the phase began"
        )
    if since >= at:
        raise pytest.UsageError(
            f"{name} {text.strip()!r} ({rfc3339(since)}) is not before the evaluation instant "
            f"{rfc3339(at)}: the evidence would be empty; give the time the phase began "
            f"(or a later {OPT_AT})"
        )


def _within_retention(start: PhaseStart, at: float, retention_s: float | None) -> PhaseStart:
    if start.since is None or retention_s is None or start.since >= at - retention_s:
        return start
    oldest = rfc3339(at - retention_s)
    return replace(
        start,
        problem=(
            f"phase start {rfc3339(start.since)} ({start.detail}) is older than the backend's "
            f"retention ({format_duration(retention_s)}): counts before {oldest} are gone, so "
            f"the phase's evidence is incomplete; pass {OPT_SINCE} {oldest} or later to judge "
            "only what is kept, or raise the backend's retention"
        ),
    )


def _unresolved(phase: str, metric: str, notes: Sequence[str]) -> PhaseStart:
    detail = "; ".join(notes)
    return PhaseStart(
        None,
        "none",
        detail,
        problem=(
            f"no phase start for {phase}: pass {OPT_SINCE} TIME (RFC 3339 or unix seconds) or set "
            f"{ENV_SINCE}, or configure audit_log (rollout.toml [environments.NAME] audit_log "
            f"or {ENV_FLAGS_AUDIT_LOG}) where `rollout flags` records changes, or export the "
            f'flag gauge {metric}{{flag="..."}} to Prometheus ({detail})'
        ),
    )


# -- the flag audit log ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Entry:
    """When one flag last reached its phase value (``exact``), or a bound: at or before."""

    time: float
    exact: bool
    what: str


def _from_audit_log(
    phase: str, wanted: Mapping[str, bool | float], at: float, path: Path
) -> PhaseStart | str:
    """The start the log shows, a PhaseStart with a problem, or why the log cannot tell."""
    shown = str(path)
    fix = f"fix it, point audit_log ({ENV_FLAGS_AUDIT_LOG}) at the right file, or pass {OPT_SINCE}"
    try:
        path.stat()
    except FileNotFoundError:
        return f"audit log {shown} does not exist (no flag change was recorded there)"
    except OSError as exc:
        return _log_problem(shown, f"cannot read the flag audit log {shown}: {exc}; {fix}")
    try:
        scan = AuditLog(path).scan()
    except FlagBackendError as exc:
        return _log_problem(shown, f"{exc}; {fix}")
    if scan.corrupt:
        lines = ", ".join(f"line {bad.line}: {bad.reason}" for bad in scan.corrupt[:5])
        return _log_problem(
            shown,
            f"flag audit log {shown} has lines that are not audit records ({lines}): a flag "
            "change written there is missing from the history, so the phase start cannot be "
            "trusted; repair or restore them (`rollout flags history --strict` lists them), "
            f"or pass {OPT_SINCE}",
        )
    chain = verify_chain(path)
    if not chain.ok:  # an edit that keeps valid JSON, e.g. a backdated change, shows only here
        return _log_problem(
            shown,
            f"flag audit log {shown} cannot be trusted: its hash chain is broken at line "
            f"{chain.broken_line} ({chain.problem}); see `rollout audit verify {shown}`, "
            f"or pass {OPT_SINCE}",
        )
    outcome_times = {
        str(r["id"]): r.get("time") for r in scan.records if r.get("kind") == "outcome"
    }
    changes: list[tuple[float, AuditedChange]] = []
    for change in reconcile(scan.records):
        if not wanted.keys() & change.flags.keys() or change.status in _DID_NOT:
            continue
        # A verified change was in effect at least by its outcome line: the later, safer time.
        stamp = outcome_times.get(change.id) if change.status == "verified" else change.time
        try:
            effective = parse_instant(str(stamp))
        except ValueError:
            return _log_problem(
                shown,
                f"change {change.id} in flag audit log {shown} has no valid time "
                f"({stamp!r}); repair that line or pass {OPT_SINCE}",
            )
        if effective <= at:
            changes.append((effective, change))
    uncertain = [c.id for _, c in changes if c.status not in _TOOK_EFFECT]
    if len(uncertain) > MAX_UNCERTAIN:
        return _log_problem(
            shown,
            f"{len(uncertain)} changes in flag audit log {shown} have no known outcome "
            f"({', '.join(uncertain[:3])}, ...); pass {OPT_SINCE}",
        )
    # A change of unknown outcome is taken both ways; the answer stands only if they agree.
    results = [
        _replay(phase, wanted, at, shown, [(t, c) for t, c in changes if c.id not in skipped])
        for size in range(len(uncertain) + 1)
        for skipped in map(set, itertools.combinations(uncertain, size))
    ]
    if any(_key(result) != _key(results[0]) for result in results):
        return _log_problem(
            shown,
            f"whether change(s) {', '.join(uncertain)} in flag audit log {shown} took effect "
            "is unknown (the writer stopped before recording an outcome) and decides the "
            f"phase start; see `rollout flags history` (it reads the backend), then pass {OPT_SINCE}",
        )
    return results[0]


def _key(result: PhaseStart | str) -> tuple[float | None, bool] | str:
    # Unresolved is one answer whatever the note says: the next source is asked either way.
    return "unresolved" if isinstance(result, str) else (result.since, result.problem is None)


def _log_problem(shown: str, problem: str) -> PhaseStart:
    return PhaseStart(None, "audit-log", f"flag audit log {shown}", problem=problem)


def _replay(
    phase: str,
    wanted: Mapping[str, bool | float],
    at: float,
    shown: str,
    changes: Sequence[tuple[float, AuditedChange]],
) -> PhaseStart | str:
    """Replay the changes that took effect up to ``at``: when did the flags last reach ``wanted``?"""
    entries: dict[str, _Entry] = {}
    wrong: list[str] = []
    for flag, want in wanted.items():
        mine = [(t, c) for t, c in changes if flag in c.flags]
        if not mine:
            return f"{flag} never changed in audit log {shown} up to {rfc3339(at)}"
        have = mine[-1][1].flags[flag]["after"]
        if not _equal(have, want):
            wrong.append(f"{flag}={_shown(have)} ({phase} wants {_shown(want)})")
            continue
        i = len(mine) - 1
        while i > 0 and _equal(mine[i - 1][1].flags[flag]["after"], want):
            i -= 1
        when, change = mine[i]
        what = f"change {change.id} by {change.actor} in {shown}"
        exact = i > 0 or not _equal(change.flags[flag]["before"], want)
        entries[flag] = _Entry(when, exact, what)
    if wrong:
        return PhaseStart(
            None,
            "audit-log",
            f"flag audit log {shown}",
            problem=(
                f"flags in {shown} are not at {phase}'s values at {rfc3339(at)}: "
                f"{', '.join(wrong)}; set them with `rollout flags` or evaluate the phase "
                "they are at"
            ),
        )
    start, why = _combine(entries, "was already at its value in its first change, at")
    if start is None:
        return f"audit log {shown}: {why}"
    return PhaseStart(start.time, "audit-log", start.what)


def _combine(entries: Mapping[str, _Entry], loose_why: str) -> tuple[_Entry | None, str]:
    """The latest exact entry, if every bound lies at or before it (else which flag is open)."""
    exact = [e for e in entries.values() if e.exact]
    latest = max(exact, key=lambda e: e.time) if exact else None
    open_ = [
        f"{flag} {loose_why} {rfc3339(e.time)}"
        for flag, e in entries.items()
        if not e.exact and (latest is None or e.time > latest.time)
    ]
    if open_:
        return None, "no transition anchors the start: " + ", ".join(open_)
    return latest, ""


def _equal(have: object, want: bool | float) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return isinstance(have, bool) and isinstance(want, bool) and have == want
    if not isinstance(have, int | float):
        return False
    return abs(float(have) - float(want)) <= _TOLERANCE


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"{value:g}"
    return repr(value)


# -- the flag gauge in Prometheus -------------------------------------------------------------


def _gauge_value(want: bool | float) -> float:
    """What the gauge shows for a phase value: 1/0 for booleans, the percent or number else."""
    return (1.0 if want else 0.0) if isinstance(want, bool) else float(want)


def _from_prometheus(
    phase: str,
    wanted: Mapping[str, bool | float],
    at: float,
    prom: PromQuery,
    metric: str,
    lookback: float,
) -> PhaseStart | str:
    """The start the flag gauge shows, a PhaseStart with a problem, or why it cannot tell."""
    selectors = {flag: f"{metric}{{flag={json.dumps(flag)}}}" for flag in wanted}
    try:
        wrong: list[str] = []
        for flag, want in wanted.items():
            now_ = prom.range(selectors[flag], start=at, end=at, allow_empty=True, allow_nan=True)
            if not now_:
                return f"no series {selectors[flag]} in the 5m before {rfc3339(at)}"
            wrong.extend(
                f"{flag}={_shown(series.points[-1][1])} on {_labels(series.labels)} "
                f"({phase} wants {_shown(_gauge_value(want))})"
                for series in now_
                if abs(series.points[-1][1] - _gauge_value(want)) > _TOLERANCE
                or math.isnan(series.points[-1][1])
            )
        if wrong:
            return PhaseStart(
                None,
                "prometheus",
                f"{metric} at {rfc3339(at)}",
                problem=(
                    f"the flag gauge {metric} is not at {phase}'s values at {rfc3339(at)}: "
                    f"{', '.join(wrong)}; every replica must serve the phase's flags, or "
                    f"pass {OPT_SINCE}"
                ),
            )
        entries = {}
        for flag, want in wanted.items():
            entry = _gauge_entry(prom, selectors[flag], _gauge_value(want), at, lookback)
            if isinstance(entry, str):
                return entry
            entries[flag] = entry
    except Inconclusive as exc:
        return PhaseStart(
            None,
            "prometheus",
            f"flag gauge {metric}",
            problem=f"could not read the flag gauge {metric}: {exc.reason}; pass {OPT_SINCE}",
        )
    start, why = _combine(
        entries,
        f"was at its value in all the data of the {format_duration(lookback)} searched, from",
    )
    if start is None:
        return f"flag gauge {metric}: {why}"
    return PhaseStart(start.time, "prometheus", start.what)


def _deviation(selector: str, target: float, step: int) -> str:
    """Greater than 0 where any raw sample of any series in ``[t - step, t]`` is not ``target``."""
    window = format_duration(step)
    value = repr(target)
    return (
        f"max(abs(max_over_time({selector}[{window}]) - {value})) + "
        f"max(abs(min_over_time({selector}[{window}]) - {value}))"
    )


def _step(lo: int, hi: int) -> int:
    return max(1, math.ceil((hi - lo + 2) / MAX_POINTS))


def _gauge_entry(
    prom: PromQuery, selector: str, target: float, at: float, lookback: float
) -> _Entry | str:
    """When every replica's gauge showed ``target`` after the last sample that did not.

    A coarse pass over the lookback finds the window holding the last wrong sample; each
    further pass narrows to that window and the first right one after it, down to a 1 s step.
    Windows tile the range, so a deviation shorter than the step is still seen.
    """
    lo, hi = math.floor(at - lookback), math.floor(at)
    step = _step(lo, hi)
    first_pass = True
    while True:
        query = _deviation(selector, target, step)
        series = prom.range(query, start=lo, end=hi, step_s=step, allow_empty=True, allow_nan=True)
        points = sorted(point for s in series for point in s.points)
        bad = [t for t, v in points if not abs(v) <= _TOLERANCE]  # NaN counts as wrong
        if first_pass and not points:
            return (
                f"no sample of {selector} in the {format_duration(lookback)} before {rfc3339(at)}"
            )
        if first_pass and not bad:
            return _Entry(points[0][0], False, f"PromQL {query}")
        good = [t for t, _ in points if bad and t > bad[-1]]
        if not bad or not good:
            return f"the flag gauge {selector} changed while it was read; run again"
        if step <= 1:
            return _first_right(prom, selector, target, at, bad[-1], good[0], query)
        # The last wrong sample lies in [bad - step, bad], the first right one after it by good.
        lo, hi = math.floor(bad[-1] - step), math.ceil(good[0])
        step = _step(lo, hi)
        first_pass = False


def _first_right(
    prom: PromQuery,
    selector: str,
    target: float,
    at: float,
    last_wrong: float,
    fallback: float,
    located_by: str,
) -> _Entry:
    """The latest of each replica's first right sample after ``last_wrong`` (to 1 s).

    Taking the latest replica, not the first sample of any, keeps the start from falling before
    a replica that had not switched yet.  A series with no sample within ``SETTLE_S`` (a replica
    that stopped, or one that appears later) does not hold the start back.
    """
    query = (
        f"abs(max_over_time({selector}[1s]) - {target!r}) + "
        f"abs(min_over_time({selector}[1s]) - {target!r})"
    )
    end = min(math.floor(at), math.ceil(last_wrong) + SETTLE_S)
    firsts = [fallback]
    if end > last_wrong:
        for series in prom.range(
            query, start=math.ceil(last_wrong), end=end, step_s=1, allow_empty=True, allow_nan=True
        ):
            right = [t for t, v in series.points if t > last_wrong and abs(v) <= _TOLERANCE]
            firsts.extend(right[:1])
    when = max(firsts)
    what = (
        f"flag gauge {selector}: every replica showed {target:g} by {rfc3339(when)}, after the "
        f"last other value at {rfc3339(last_wrong)} (to 1 s: at most one scrape interval after "
        f"the change); PromQL: {located_by}, then {query}"
    )
    return _Entry(when, True, what)


def _labels(labels: Mapping[str, str]) -> str:
    shown: Iterable[str] = (f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return "{" + ",".join(shown) + "}"
