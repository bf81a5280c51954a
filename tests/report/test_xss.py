"""Script and HTML payloads from outside show as text in real headless Chromium; none runs."""

from __future__ import annotations

import pytest

from tests.report.helpers import Node, dump_dom, parse

# Each payload marks <html data-xss-WHERE="1"> if it runs. No quotes or slashes: they must survive
# TOML keys, pytest ids and shell quoting unchanged, so only escaping can stop them.
MARK = "document.documentElement.dataset.xss{}=1"
PAYLOADS = {
    "Metric": "<img src=x onerror={}>",
    "Label": "<script>{}</script>",
    "Query": "</code></li></ol><img src=x onerror={}>",
    "Reason": "<svg onload={}>",
    "Assertion": "</td></tr></table><img src=x onerror={}>",
    "Explanation": "<img src=x onerror={}>",
    "Environment": "<img src=x onerror={}>",
    "Nodeid": "<img src=x onerror={}>",
    "Metadata": "<img src=x onerror={}>",
    "Action": "<img src=x onerror={}>",
    "Attribute": 'x" autofocus onfocus={} x="',
}
P = {where: shape.format(MARK.format(where)) for where, shape in PAYLOADS.items()}

CONFTEST = f"""
import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_rollout_rollback(config, phase, rollback_state):
    return {{"action": "rollback", "at": "2026-11-25T14:00:01Z", "result": "failed",
            "message": {P["Action"]!r}}}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # Positive control: pytest-html inserts html extras raw, so this one must run in Chromium.
    report = yield
    if report.when == "call" and item.name == "test_control_gate":
        from pytest_html import extras
        raw = "<img src=x onerror=document.documentElement.dataset.control=1>"
        report.extras = [*getattr(report, "extras", []), extras.html(raw)]
    return report
"""

GATES = f"""
import pytest
import pytest_rollout
from pytest_rollout.gate import QueryRecord

pytestmark = pytest.mark.phase2
LABEL = {P["Label"]!r}


def test_control_gate(gate):
    gate.observe(metric="control", observed=1.0, threshold=2.0)


def test_label_values_metric_and_query(gate):
    gate.series = {{"control": [[1795611600 + 60 * i, 0.01] for i in range(10)],
                    LABEL: [[1795611600 + 60 * i, 0.02] for i in range(10)]}}
    gate.add_query(QueryRecord(query='sum by (group) (x{{group="' + LABEL + '"}})' + {P["Query"]!r},
                               at="2026-11-25T14:00:00Z", duration_s=0.01,
                               summary={P["Attribute"]!r}))
    gate.observe(metric={P["Metric"]!r}, observed=0.002, threshold=0.01, unit="s",
                 n={{"control": 100, LABEL: 5}}, ci=(0.001, 0.003), p_value=0.5,
                 explanation={P["Explanation"]!r})


def test_reason(gate):
    pytest_rollout.inconclusive({P["Reason"]!r})


@pytest.mark.abort
def test_assertion_message(gate):
    assert False, {P["Assertion"]!r}


@pytest.mark.parametrize("label", [{P["Nodeid"]!r}])
def test_parametrized_by_label(gate, label):
    gate.observe(metric=label, observed=None)
"""

ROLLOUT_TOML = f"""
[rollout]
default_environment = '{P["Environment"]}'

[environments.'{P["Environment"]}']
"""


def test_payloads_render_as_text_and_never_run(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_gates=GATES)
    (pytester.path / "rollout.toml").write_text(ROLLOUT_TOML)
    report = pytester.path / "out" / "report.html"
    result = pytester.runpytest(
        "-p",
        "no:cacheprovider",
        "--rollout-at=2026-11-25T14:00:00Z",
        "--rollout-on-abort=rollback",
        "--metadata",
        "Owner",
        P["Metadata"],
        f"--html={report}",
        "--self-contained-html",
    )
    assert result.ret == 10, result.stdout.str()  # ABORT: the abort trigger failed

    dom = parse(dump_dom(report, pytester.path / "chromium-profile", "?collapsed="))
    page = dom.find("html")
    # The page's scripts ran: rows were rendered, and the raw control extra executed.
    results = dom.find("table", id="results-table")
    assert len(results.find_all("tbody", cls="results-table-row")) == 5
    assert page.attrs.get("data-control") == "1"
    # ... but none of ours did.
    ran = sorted(name for name in page.attrs if name.startswith("data-xss"))
    assert ran == []
    # Every payload is on the page as literal text.
    text = _visible_text(dom)
    for where, payload in P.items():
        assert payload in text, f"{where} payload not shown literally"
    # Where they were expected: banner (reason, environment, action), cells, extras.
    banner = dom.find("section", id="rollout-decision").text()
    for where in ("Environment", "Action"):
        assert P[where] in banner, where
    assert dom.find_all("img", cls="rollout-plot")  # the label-valued series was still plotted


def _visible_text(dom: Node) -> str:
    parts: list[str] = []

    def walk(node: Node) -> None:
        if node.tag in ("script", "style", "template"):
            return
        for child in node.children:
            if isinstance(child, str):
                parts.append(child)
            else:
                walk(child)

    walk(dom)
    return "".join(parts)
