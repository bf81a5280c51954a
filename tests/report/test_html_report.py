"""The HTML audit report and JUnit properties from real runs, serial and under -n 2."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from tests.report.helpers import AT, SCENARIOS, make_project, read_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# gate name -> cells expected in its row (column -> text)
EXPECTED_CELLS = {
    "test_shadow_p99_latency_within_10ms_of_control": {
        "rolloutKind": "criterion",
        "rolloutOutcome": "PASS ✓",
        "rolloutMetric": "recall p99 latency delta",
        "rolloutObserved": "+1.6 ms vs +10.0 ms",
        "rolloutN": "control 41,210, treatment 2,210",
        "rolloutInterval": "-1.1 ms to +4.4 ms",
        "rolloutP": "0.0123",
    },
    "test_shadow_error_rate_within_0_1pp": {
        "rolloutOutcome": "PASS ✓",
        "rolloutObserved": "+0.02 pp vs +0.1 pp",
        "rolloutInterval": "-0.03 pp to +0.07 pp",
        "rolloutP": "0.02",
    },
    "test_canary_has_1000_queries_per_group": {
        "rolloutKind": "criterion",
        "rolloutOutcome": "INCONCLUSIVE ?",
        "rolloutObserved": "12 vs 1e+03",
        "rolloutN": "control 9,000, treatment 12",
        "rolloutInterval": "—",
        "rolloutP": "—",
    },
    "test_canary_p99_latency_within_10ms_of_control": {"rolloutOutcome": "PASS ✓"},
    "test_abort_when_p99_regresses_over_20ms": {
        "rolloutKind": "abort trigger",
        "rolloutOutcome": "FAIL ✗",
        "rolloutObserved": "+31.0 ms vs +20.0 ms",
        "rolloutP": "< 0.0001",
    },
    "test_ramp_error_rate_within_0_1pp": {"rolloutOutcome": "PASS ✓"},
}
WITH_PLOT = {
    "test_shadow_p99_latency_within_10ms_of_control",
    "test_canary_p99_latency_within_10ms_of_control",
    "test_abort_when_p99_regresses_over_20ms",
}
COLUMNS = [
    "Kind",
    "Outcome",
    "Metric",
    "Observed vs threshold",
    "n per group",
    "Interval",
    "p-value",
]


def run(
    pytester: pytest.Pytester,
    phase: str,
    *,
    xdist: bool,
    self_contained: bool,
    extra: tuple[str, ...] = (),
) -> tuple[pytest.RunResult, Path]:
    out = pytester.path / "out"
    args = [
        "-p",
        "no:cacheprovider",
        "-m",
        phase,
        f"--rollout-at={AT}",
        f"--html={out / 'report.html'}",
        f"--junitxml={out / 'junit.xml'}",
        f"--rollout-decision-json={out / 'decision.json'}",
        *extra,
    ]
    if self_contained:
        args.append("--self-contained-html")
    if xdist:
        return pytester.runpytest_subprocess("-n", "2", *args), out
    return pytester.runpytest(*args), out


@pytest.mark.parametrize(
    ("phase", "xdist", "self_contained"),
    [
        ("phase1", False, False),
        ("phase1", True, True),
        ("phase2", False, True),
        ("phase2", True, False),
        ("phase3", False, True),
        ("phase3", True, True),
    ],
    ids=["GO-serial", "GO-xdist", "HOLD-serial", "HOLD-xdist", "ABORT-serial", "ABORT-xdist"],
)
def test_report_shows_decision_gates_and_evidence(
    pytester: pytest.Pytester, phase: str, xdist: bool, self_contained: bool
) -> None:
    make_project(pytester)
    decision, status = SCENARIOS[phase]
    result, out = run(pytester, phase, xdist=xdist, self_contained=self_contained)
    assert result.ret == status, result.stdout.str()
    record = json.loads((out / "decision.json").read_text())
    report = read_report(out / "report.html")

    assert report.page.find("h1", id="title").text() == f"Rollout {phase}: gate report"
    # banner: phase, decision in colour, reason, context
    banner = report.banner
    assert f"rollout-{decision}" in banner.classes
    assert banner.find(cls="rollout-verdict").text() == decision
    assert banner.find(cls="rollout-phase").text() == phase
    assert banner.find(cls="rollout-reason").text() == record["reason"]
    context = report.context()
    assert context["Evaluated at"] == AT
    window = record["window"]
    assert context["Window"].startswith(f"{window['start']} → {window['end']}")
    assert record["digest"] in context["Decision record"]
    assert "rollout verify" in context["Decision record"]
    command = context["Reproduce"]
    assert command.startswith("pytest ") and f"--rollout-at={AT}" in command
    assert f"-m {phase}" in command
    for output_option in ("--html", "--junitxml", "--rollout-decision-json", "self-contained"):
        assert output_option not in command
    assert context["Gates commit"]  # "unknown" here: the pytester dir is not a git checkout
    assert context["Operator"] and context["Prometheus"] == "(not configured)"
    assert context["Actions"] == "none"
    for key in ("Environment", "Flags before", "Flags after", "Gates"):
        assert key in context
    # the banner comes before the environment table on screen (CSS order) and in the summary
    assert report.page.find("div", cls="prefix").find("section", id="rollout-decision")

    # per-gate columns
    assert report.headers[-len(COLUMNS) :] == COLUMNS
    names = {g["nodeid"].rsplit("::", 1)[-1] for g in record["gates"]}
    assert names and names <= set(EXPECTED_CELLS)
    for name in names:
        row = report.row(name)
        for column, text in EXPECTED_CELLS[name].items():
            assert row.cells[column].text() == text, (name, column)
        outcome_cell = row.cells["rolloutOutcome"]
        gate = next(g for g in record["gates"] if g["nodeid"] == row.nodeid)
        assert f"rollout-{gate['outcome']}" in outcome_cell.classes
        _check_extras(name, row.extras, gate)

    _check_junit(out / "junit.xml", record)


def _check_extras(name: str, extras: list[Any], gate: dict[str, Any]) -> None:
    details = [
        e.find("div", cls="rollout-gate") for e in extras if e.find_all("div", cls="rollout-gate")
    ]
    assert len(details) == 1, name
    detail = details[0]
    words = detail.find("p", cls="rollout-words").text()
    if gate["metric"]:
        assert gate["metric"] in words
    assert {"pass": "passed", "fail": "failed", "inconclusive": "could not decide"}[
        gate["outcome"]
    ] in words
    if name == "test_shadow_p99_latency_within_10ms_of_control":
        assert (
            "treatment p99 is 1.6 ms higher than control, 95 % interval -1.1 to +4.4 ms, "
            "within the +10 ms margin" in words
        )
        assert "against a threshold of +10.0 ms" in words
    if name == "test_canary_has_1000_queries_per_group":
        assert "only 12 treatment queries, need 1000" in words
    images = detail.find_all("img", cls="rollout-plot")
    if name in WITH_PLOT:
        assert len(images) == 1
        src = images[0].attrs["src"]
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_MAGIC) and len(png) > 5000
    else:
        assert not images
        assert "no series recorded" in detail.find(cls="rollout-no-series").text()
    queries = [
        code.text()
        for code in detail.find_all("code")
        if code.text() and "rollout-queries" not in code.attrs.get("class", "")
    ]
    for query in gate["queries"]:
        assert query in queries, name


def _check_junit(path: Path, record: dict[str, Any]) -> None:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props["rollout_phase"] == record["phase"]
    assert props["rollout_decision"] == record["decision"]
    assert props["rollout_digest"] == record["digest"]
    for gate in record["gates"]:
        classname, name = gate["nodeid"].rsplit("::", 1)
        case = next(c for c in suite.iter("testcase") if c.get("name") == name)
        gate_props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert gate_props["rollout_kind"] == gate["kind"]
        assert gate_props["rollout_outcome"] == gate["outcome"]
        for key in ("observed", "threshold"):
            expected = "" if gate[key] is None else str(gate[key])
            assert gate_props[f"rollout_{key}"] == expected


def test_inconclusive_cell_is_styled_apart_from_pass() -> None:
    from pytest_rollout.redact import Redactor
    from pytest_rollout.report import render

    renderer = render.Renderer(Redactor())
    inconclusive = renderer.row_cells(
        {"kind": "criterion", "outcome": "inconclusive", "reason": "too few", "record": {}}
    )[1]
    passed = renderer.row_cells(
        {"kind": "criterion", "outcome": "pass", "reason": "", "record": {}}
    )[1]
    assert "rollout-inconclusive" in inconclusive and "rollout-pass" in passed
    style = render.STYLE
    rule = style[style.index("td.rollout-inconclusive") :]
    assert "background" in rule.split("}", 1)[0]
    assert "td.rollout-pass { color: #1a7f37; }" in style


def test_plugin_works_without_pytest_html(pytester: pytest.Pytester) -> None:
    """No pytest-html: no report plugin, no matplotlib import, JUnit properties still there."""
    make_project(pytester)
    pytester.makepyfile(
        test_imports="""
import sys
import pytest

@pytest.mark.phase1
def test_no_report_machinery_loaded(request):
    assert not request.config.pluginmanager.has_plugin("rollout-html")
    assert "matplotlib" not in sys.modules
"""
    )
    out = pytester.path / "out"
    result = pytester.runpytest_subprocess(
        "-p", "no:html", "-p", "no:cacheprovider", "-m", "phase1", f"--junitxml={out / 'junit.xml'}"
    )
    assert result.ret == 0, result.stdout.str()
    result.assert_outcomes(passed=3)
    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props["rollout_decision"] == "GO"
