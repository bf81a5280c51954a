"""The fault matrix: one row per (fault, where it is injected), and what the run must do.

docs/reliability.md lists exactly these rows (tests/faults/test_reliability_doc.py keeps them in
step). Each row is run by tests/faults/test_fault_matrix.py as a real pytest subprocess.
"""

from __future__ import annotations

from dataclasses import dataclass

# Secrets every row carries; none may appear in any output or file of the run.
PROM_USER = "alice"
PROM_PASSWORD = "S3cretPw0rd"
FLAG_TOKEN = "fl4g-T0ken-S3cret"
SECRETS = (PROM_PASSWORD, FLAG_TOKEN)

HOLD_ON_METRICS = "the criterion is inconclusive, so the phase HOLDs (never GO)"
ROLLBACK_LOUD = "ABORT stays ABORT (exit 10) and the record says ROLLBACK FAILED and why"
DECISION_KEPT = "the exit status still follows the decision"


@dataclass(frozen=True)
class Row:
    id: str
    fault: str
    where: str
    exit: int
    decision: str
    message: str  # a regex that must match the run's output or the record's reason
    promise: str  # what the row guarantees, in the words of docs/reliability.md
    backend: str = "refused"  # refused | fake:<mode> | faults:<mode> | tls | real | staging
    query: str = "rt_error_ratio"  # the criterion's query (backend rows)
    gates: str = "plain"  # which gate module the project gets (see GATE_MODULES)
    args: tuple[str, ...] = ()
    toml: str = ""  # appended to the row's rollout.toml
    flags: str = ""  # the flag backend fault: refused | hanging | 401 | acked-ignored | ...
    audit_status: str = ""  # the reconciled audit status of the rollback change
    unwritable: str = ""  # record | html | junit: that artifact's path cannot be written
    # A product defect this row shows today: the promise it breaks (an exception class of
    # test_fault_matrix.py) and why. Strict: once fixed, the row passes and the mark must go.
    breaks: str = ""
    defect: str = ""


METRICS = "metrics backend, on a gate's query"
FLAGS = "flag backend, in the rollback after an ABORT"
ROLLBACK_TOML = "\n[phases.phase2]\nrollback = {blended_recall = 0}\n"
WAIVE_TOML = (
    '\n[environments.faults.phases.phase2.waive]\nsoak = "no soak runs in this environment"\n'
)

ROWS: tuple[Row, ...] = (
    # -- the metrics backend ----------------------------------------------------------------
    Row(
        "prom-refused",
        "connection refused",
        METRICS,
        1,
        "HOLD",
        r"cannot connect to http://127\.0\.0\.1:\d+",
        HOLD_ON_METRICS,
        backend="refused",
        gates="prom",
    ),
    Row(
        "prom-hanging",
        "no answer (server sleeps past the 1 s timeout)",
        METRICS,
        1,
        "HOLD",
        r"timed out|timeout|no answer",
        HOLD_ON_METRICS,
        backend="fake:slow",
        gates="prom",
    ),
    Row(
        "prom-http-500",
        "HTTP 500",
        METRICS,
        1,
        "HOLD",
        r"HTTP 500",
        HOLD_ON_METRICS,
        backend="fake:http500",
        gates="prom",
    ),
    Row(
        "prom-http-400-promql",
        "HTTP 400 with a PromQL parse error",
        METRICS,
        1,
        "HOLD",
        r"HTTP 400|parse error",
        HOLD_ON_METRICS + "; the backend's error text is shown",
        backend="fake:badquery",
        gates="prom",
    ),
    Row(
        "prom-html",
        "HTTP 200 with an HTML page",
        METRICS,
        1,
        "HOLD",
        r"not a Prometheus API response|HTML|not JSON",
        HOLD_ON_METRICS,
        backend="fake:garbage",
        gates="prom",
    ),
    Row(
        "prom-truncated-json",
        "HTTP 200 with JSON cut off mid-body",
        METRICS,
        1,
        "HOLD",
        r"not a Prometheus API response|JSON|truncated",
        HOLD_ON_METRICS,
        backend="faults:truncated",
        gates="prom",
    ),
    Row(
        "prom-tls-untrusted",
        "HTTPS with a certificate no trust store knows",
        METRICS,
        1,
        "HOLD",
        r"TLS|SSL|[Cc]ertificate",
        HOLD_ON_METRICS + "; TLS is never silently skipped",
        backend="tls",
        gates="prom",
    ),
    Row(
        "prom-nan",
        "the query answers NaN (real Prometheus, 0/0)",
        METRICS,
        1,
        "HOLD",
        r"NaN",
        HOLD_ON_METRICS,
        backend="real",
        gates="prom",
        query="rt_idle / rt_idle",
    ),
    Row(
        "prom-empty",
        "the query answers no series (real Prometheus)",
        METRICS,
        1,
        "HOLD",
        r"no data|no series|empty|returned nothing",
        HOLD_ON_METRICS,
        backend="real",
        gates="prom",
        query="rt_no_such_metric",
    ),
    Row(
        "prom-stale",
        "the newest sample is minutes old (real Prometheus)",
        METRICS,
        1,
        "HOLD",
        r"stale",
        HOLD_ON_METRICS,
        backend="real",
        gates="prom",
        query="rt_ended_early",
        toml='max_staleness = "1m"\n',
    ),
    # -- the flag backend -------------------------------------------------------------------
    Row(
        "flags-refused",
        "connection refused",
        FLAGS,
        10,
        "ABORT",
        r"ROLLBACK FAILED.*cannot connect",
        ROLLBACK_LOUD + "; nothing reached the backend: the audit log records no change and "
        "the flags are untouched",
        gates="abort-fails",
        toml=ROLLBACK_TOML,
        flags="refused",
        audit_status="none",
    ),
    Row(
        "flags-hanging",
        "the write gets no answer within the client timeout",
        FLAGS,
        10,
        "ABORT",
        r"ROLLBACK FAILED.*no answer within",
        ROLLBACK_LOUD + "; the audit log keeps the change as unknown (it may have taken "
        "effect), never as not applied",
        gates="abort-fails",
        toml=ROLLBACK_TOML,
        flags="hanging",
        audit_status="unknown",
    ),
    Row(
        "flags-401",
        "HTTP 401 (wrong bearer token)",
        FLAGS,
        10,
        "ABORT",
        r"ROLLBACK FAILED.*401",
        ROLLBACK_LOUD + "; nothing was accepted: no change in the audit log, the flags "
        "untouched, the token never shown",
        gates="abort-fails",
        toml=ROLLBACK_TOML,
        flags="401",
        audit_status="none",
    ),
    Row(
        "flags-acked-ignored",
        "the write is acknowledged but reads show the old value",
        FLAGS,
        10,
        "ABORT",
        r"ROLLBACK FAILED",
        ROLLBACK_LOUD + "; an acknowledged write is checked by read-back, and the audit log "
        "says unverified",
        gates="abort-fails",
        toml=ROLLBACK_TOML,
        flags="acked-ignored",
        audit_status="unverified",
    ),
    Row(
        "flags-file-read-only",
        "the flagd file is read-only (refused even as root)",
        FLAGS,
        10,
        "ABORT",
        r"ROLLBACK FAILED.*read-only",
        ROLLBACK_LOUD + "; refused before writing: the audit log says failed and the file "
        "is unchanged",
        gates="abort-fails",
        toml=ROLLBACK_TOML,
        flags="read-only",
        audit_status="failed",
    ),
    # -- writing the answer -----------------------------------------------------------------
    Row(
        "record-unwritable",
        "the decision record's directory cannot be created",
        "decision record, after the decision",
        0,
        "GO",
        r"pytest-rollout: ERROR: cannot write the decision record to .*; written to .* instead",
        "the record goes to a fallback path named on stderr; " + DECISION_KEPT,
        unwritable="record",
    ),
    Row(
        "html-unwritable",
        "the HTML report's directory cannot be created",
        "pytest-html report, when pytest starts",
        4,
        "HOLD",
        r"--html|report\.html",
        "an --html path that cannot be created is a usage error naming it, with a HOLD record; "
        "never an internal error that leaves the previous run's record in place",
        unwritable="html",
    ),
    Row(
        "junit-unwritable",
        "the JUnit XML's directory cannot be created",
        "JUnit XML report, when pytest starts",
        4,
        "HOLD",
        r"--junitxml",
        "a --junitxml path that cannot be written is a usage error naming it, with a HOLD "
        "record: a JUnit failure after the decision would stop pytest-html from writing the "
        "audit report",
        unwritable="junit",
    ),
    # -- runs that end without a decision ---------------------------------------------------
    Row(
        "collection-error",
        "a gate module does not import (syntax error)",
        "collection",
        2,
        "HOLD",
        r"no decision: the run ended with exit 2",
        "pytest's exit 2 is kept; the record says HOLD, unfinished, and why",
        gates="syntax-error",
    ),
    Row(
        "usage-rollout-at-future",
        "--rollout-at one hour in the future",
        "command line",
        4,
        "HOLD",
        r"--rollout-at",
        "usage error (exit 4) naming the option; the record says HOLD",
        args=("--rollout-at=@FUTURE@",),
    ),
    Row(
        "usage-bad-window",
        "--rollout-window with a value that is no duration",
        "command line",
        4,
        "HOLD",
        r"--rollout-window",
        "usage error (exit 4) naming the option; the record says HOLD",
        args=("--rollout-window=fortnight",),
    ),
    # -- runs that cover less than the phase ------------------------------------------------
    Row(
        "deselect-k",
        "-k leaves a gate of the phase out",
        "selection",
        1,
        "HOLD",
        r"partial run: 1 of 2 gates of phase2 ran",
        "a partial run never GOes; the record lists what was left out",
        args=("-k", "not p99"),
    ),
    Row(
        "deselect-m",
        "-m excludes the abort triggers",
        "selection",
        1,
        "HOLD",
        r"partial run: 1 of 2 gates of phase2 ran",
        "a partial run never GOes; the record lists what was left out",
        args=("-m", "phase2 and not abort"),
    ),
    Row(
        "deselect-option",
        "--deselect of one gate",
        "selection",
        1,
        "HOLD",
        r"partial run: 1 of 2 gates of phase2 ran",
        "a partial run never GOes; the record lists what was left out",
        args=("--deselect", "test_gates.py::test_abort_when_p99_regresses_over_20ms"),
    ),
    Row(
        "named-by-node-id",
        "one gate named by node id",
        "selection",
        1,
        "HOLD",
        r"partial run: gates were named by node id",
        "naming single gates never GOes a phase",
        args=("test_gates.py::test_error_ratio_below_1_percent",),
    ),
    Row(
        "deselect-abort-stays-abort",
        "-k keeps only a failing abort trigger",
        "selection",
        10,
        "ABORT",
        r"p99 delta \+94 ms",
        "a failed abort trigger ABORTs even in a partial run",
        gates="abort-fails",
        args=("-k", "p99"),
    ),
    Row(
        "waived-gate",
        "rollout.toml waives the soak gate in this environment",
        "rollout.toml",
        0,
        "GO",
        r"waived in this environment \(soak\)",
        "a waived gate is left out by name and listed with its reason in the record",
        gates="with-soak",
        toml=WAIVE_TOML,
    ),
    # -- typos --------------------------------------------------------------------------------
    Row(
        "marker-typo-abort",
        "@pytest.mark.abrot on an abort trigger",
        "gate markers",
        4,
        "HOLD",
        r"unknown marker @pytest\.mark\.abrot \(did you mean @pytest\.mark\.abort\?\)",
        "usage error naming the marker with a did-you-mean; an abort trigger never silently "
        "becomes a criterion",
        gates="marker-typo-abort",
    ),
    Row(
        "marker-typo-phase",
        "pytestmark = pytest.mark.phsae2",
        "gate markers",
        4,
        "HOLD",
        r"unknown marker @pytest\.mark\.phsae2 \(did you mean @pytest\.mark\.phase2\?\)",
        "usage error naming the marker with a did-you-mean",
        gates="marker-typo-phase",
    ),
    Row(
        "config-unknown-key",
        'timeot = "1s" in [environments.faults]',
        "rollout.toml",
        4,
        "HOLD",
        r"timeot",
        "usage error naming the file and key; never falls back to defaults",
        toml='timeot = "1s"\n',
    ),
    Row(
        "config-unknown-phase",
        "[environments.faults.phases.phsae2]",
        "rollout.toml",
        4,
        "HOLD",
        r"phsae2",
        "usage error naming the table and the known phases",
        toml='\n[environments.faults.phases.phsae2]\nwindow = "5m"\n',
    ),
    # -- crashes --------------------------------------------------------------------------------
    Row(
        "kill9-flag-writer-before-replace",
        "kill -9 of a flag writer before its rename",
        "flagd file writer",
        10,
        "ABORT",
        r"ACTION rollback: verified",
        "the file stays whole and old, the audit log says not-applied, the lock dies with the "
        "writer and the next rollback is verified",
        gates="abort-fails",
        toml=ROLLBACK_TOML,
        flags="kill9-before-replace",
        audit_status="verified",
    ),
    Row(
        "kill9-flag-writer-after-replace",
        "kill -9 of a flag writer after its rename",
        "flagd file writer",
        10,
        "ABORT",
        r"ACTION rollback: verified",
        "the file stays whole and new, the audit log says applied, the next rollback is verified",
        gates="abort-fails",
        toml=ROLLBACK_TOML,
        flags="kill9-after-replace",
        audit_status="verified",
    ),
    Row(
        "kill9-staging-service",
        "kill -9 of the staging service during concept formation",
        "staging service",
        0,
        "GO",
        r"GO — all 2 gates passed",
        "every acknowledged episode survives (RPO zero) and the gates read it back",
        backend="staging",
        gates="staging",
    ),
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_table() -> str:
    """The matrix as docs/reliability.md shows it (between its fault-matrix markers)."""
    lines = [
        "| row | fault | injected in | exit, decision | what it promises |",
        "|---|---|---|---|---|",
    ]
    for row in ROWS:
        promise = row.promise + (
            f" — **known defect, strict xfail:** {row.defect}" if row.defect else ""
        )
        lines.append(
            f"| `{row.id}` | {_cell(row.fault)} | {_cell(row.where)} | "
            f"{row.exit}, {row.decision} | {_cell(promise)} |"
        )
    return "\n".join(lines) + "\n"


def render_counts() -> str:
    defects = sum(1 for row in ROWS if row.defect)
    known = f"; {defects} are strict xfails that show a known product defect" if defects else ""
    return f"**{len(ROWS)} rows, {len(ROWS) - defects} pass in CI{known}.**"


if __name__ == "__main__":  # python -m tests.faults.matrix: the block to paste into the doc
    print(render_counts() + "\n\n" + render_table())
