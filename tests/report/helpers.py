"""Helpers of the report tests: a gate project, a small HTML tree, reading pytest-html reports."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

AT = "2026-11-25T14:00:00Z"
T0 = 1_795_615_200 - 3600  # one hour before AT, in unix seconds

GATES = f'''
import pytest
import pytest_rollout
from pytest_rollout.gate import QueryRecord

T0 = {T0}
P99 = ("histogram_quantile(0.99, sum by (group, le) "
       "(rate(engram_recall_duration_seconds_bucket[5m])))")


def series(gate, control, treatment):
    gate.series = {{
        "control": [[T0 + 60 * i, control + 0.0002 * (i % 5)] for i in range(60)],
        "treatment": [[T0 + 60 * i, treatment + 0.0002 * (i % 3)] for i in range(60)],
    }}


def sent(gate, query, summary="2 series"):
    gate.add_query(QueryRecord(query=query, at="{AT}", duration_s=0.012, summary=summary))


@pytest.mark.phase1
def test_shadow_p99_latency_within_10ms_of_control(gate):
    series(gate, 0.0120, 0.0136)
    sent(gate, P99)
    gate.observe(metric="recall p99 latency delta", observed=0.0016, threshold=0.010, unit="s",
                 n={{"control": 41210, "treatment": 2210}}, p_value=0.0123, ci=(-0.0011, 0.0044),
                 explanation="treatment p99 is 1.6 ms higher than control, 95 % interval -1.1 to "
                 "+4.4 ms, within the +10 ms margin")


@pytest.mark.phase1
def test_shadow_error_rate_within_0_1pp(gate):
    gate.observe(metric="error rate delta", observed=0.0002, threshold=0.001, unit="ratio",
                 n={{"control": 41210, "treatment": 2210}}, p_value=0.02, ci=(-0.0003, 0.0007))


@pytest.mark.phase2
def test_canary_p99_latency_within_10ms_of_control(gate):
    series(gate, 0.0120, 0.0125)
    sent(gate, P99)
    gate.observe(metric="recall p99 latency delta", observed=0.0005, threshold=0.010, unit="s",
                 n={{"control": 9000, "treatment": 1100}}, p_value=0.03, ci=(-0.002, 0.003))


@pytest.mark.phase2
def test_canary_has_1000_queries_per_group(gate):
    sent(gate, 'sum by (group) (increase(engram_recall_total[1h]))', "2 series")
    gate.observe(metric="queries per group", observed=12, threshold=1000,
                 n={{"control": 9000, "treatment": 12}})
    pytest_rollout.inconclusive("only 12 treatment queries, need 1000")


@pytest.mark.phase3
def test_ramp_error_rate_within_0_1pp(gate):
    gate.observe(metric="error rate delta", observed=0.0001, threshold=0.001, unit="ratio",
                 ci=(-0.0002, 0.0004), p_value=0.01)


@pytest.mark.phase3
@pytest.mark.abort
def test_abort_when_p99_regresses_over_20ms(gate):
    series(gate, 0.0120, 0.0430)
    sent(gate, P99)
    gate.observe(metric="recall p99 latency delta", observed=0.031, threshold=0.020, unit="s",
                 n={{"control": 30000, "treatment": 8000}}, p_value=0.00001, ci=(0.026, 0.036))
    assert False, "p99 is 31.0 ms worse than control, over the 20 ms abort margin"
'''

# -m PHASE -> (decision, exit status)
SCENARIOS = {"phase1": ("GO", 0), "phase2": ("HOLD", 1), "phase3": ("ABORT", 10)}


def make_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gates=GATES)


# ---------------------------------------------------------------------------------------------
# a small DOM built with html.parser

VOID = {
    "area",
    "base",
    "br",
    "col",
    "embed",
    "hr",
    "img",
    "input",
    "link",
    "meta",
    "source",
    "track",
    "wbr",
}


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Any:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        out = []
        for node in self.iter():
            if tag and node.tag != tag:
                continue
            if cls and cls not in node.attrs.get("class", "").split():
                continue
            if any(node.attrs.get(k.replace("_", "-")) != v for k, v in attrs.items()):
                continue
            out.append(node)
        return out

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        assert found, f"no <{tag} class={cls} {attrs}> in the document"
        return found[0]

    @property
    def classes(self) -> list[str]:
        return self.attrs.get("class", "").split()


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(text: str) -> Node:
    builder = _Builder()
    builder.feed(text)
    builder.close()
    return builder.root


# ---------------------------------------------------------------------------------------------
# pytest-html 4 reports: static page + JSON blob of rows rendered by the page's script


@dataclass
class Row:
    nodeid: str
    cells: dict[str, Node]  # column (data-column-type / col-X) -> <td>
    extras: list[Node]  # html extras, parsed


@dataclass
class Report:
    page: Node
    rows: dict[str, list[Row]]
    headers: list[str]

    @property
    def banner(self) -> Node:
        return self.page.find("section", id="rollout-decision")

    def context(self) -> dict[str, str]:
        table = self.banner.find("table", cls="rollout-context")
        return {tr.find("th").text(): tr.find("td").text() for tr in table.find_all("tr")}

    def row(self, name: str) -> Row:
        matches = [rows[0] for nodeid, rows in self.rows.items() if nodeid.endswith("::" + name)]
        assert len(matches) == 1, (name, list(self.rows))
        return matches[0]


def read_report(path: Path) -> Report:
    page = parse(path.read_text(encoding="utf-8"))
    headers = [
        th.text().strip() for th in page.find("thead", id="results-table-head").find_all("th")
    ]
    blob = json.loads(page.find("div", id="data-container").attrs["data-jsonblob"])
    rows: dict[str, list[Row]] = {}
    for nodeid, entries in blob["tests"].items():
        for entry in entries:
            cells = {}
            for html in entry["resultsTableRow"]:
                td = parse(html).find("td")
                column = next(c[4:] for c in td.classes if c.startswith("col-"))
                cells[column] = td
            extras = [
                parse(e["content"]) for e in entry.get("extras", []) if e["format_type"] == "html"
            ]
            rows.setdefault(nodeid, []).append(Row(nodeid, cells, extras))
    return Report(page, rows, headers)


# ---------------------------------------------------------------------------------------------
# headless Chromium (Debian's `chromium`), as root, with a fresh profile

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_binary() -> str:
    """The chromium binary; skipped locally when missing, a failure in CI."""
    import os
    import shutil

    found = shutil.which("chromium")
    if found is None:
        message = "Debian's chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


def dump_dom(page: Path, profile: Path, query: str = "") -> str:
    """The DOM after the page's scripts ran (and its pending events fired)."""
    import subprocess

    command = [
        chromium_binary(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.as_uri() + query,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout
