"""What VictoriaMetrics does differently from Prometheus that could change a decision.

The backfilled and live end-to-end tests run on both backends (test_prometheus_e2e.py); this
module holds what only VictoriaMetrics does: ``-search.latencyOffset`` (30 s by default) moves a
query near "now" back by that much, yet labels the answer with the instant asked for, and
``time()`` moves with it, so ``time() - timestamp(x)`` still looks fresh. The product sends
``nocache=1`` (which keeps instant queries where asked) and checks ``time()`` where it evaluates
(which catches range points overwritten with older values): a regression in the newest 30 s
must not read as GO.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from pytest_rollout.gate import GateRecord
from pytest_rollout.metrics.prometheus import PrometheusSource, PromQuery, PromSettings
from pytest_rollout.openmetrics import OpenMetricsWriter
from pytest_rollout.outcomes import Inconclusive
from tests import vm_harness
from tests.core.helpers import EXIT, output
from tests.core.prometheus_helpers import E2E_TOML
from tests.core.test_prometheus_e2e import run_against

HEALTHY, REGRESSED = 0.001, 0.2
GATE_MODULES = {
    # An abort trigger on an instant query: `nocache=1` keeps VictoriaMetrics from moving it.
    "instant": """
import pytest

pytestmark = pytest.mark.phase2

def test_error_ratio_below_1_percent(prom):
    assert prom.value("rt_fresh_error_ratio") < 0.01

@pytest.mark.abort
def test_abort_when_error_ratio_over_5_percent(prom, gate):
    value = prom.value("rt_fresh_error_ratio")
    gate.observe(metric="error ratio", observed=value, threshold=0.05)
    assert value < 0.05, f"error ratio {value} over 0.05"
""",
    # The same trigger over 5 s points of the last two minutes: VictoriaMetrics overwrites the
    # points of its latency offset with an older value in ranges with a step under 1m.
    "range": """
import pytest

pytestmark = pytest.mark.phase2

@pytest.mark.abort
def test_abort_when_error_ratio_over_5_percent_in_2m(prom):
    (series,) = prom.range("rt_fresh_error_ratio", window_s=120, step_s=5)
    worst = max(v for _, v in series.points)
    assert worst < 0.05, f"error ratio {worst} over 0.05"
""",
}


def _load_fresh_regression(server: vm_harness.VictoriaMetricsServer) -> int:
    """Ten healthy minutes, then a regression in the newest 15 s; returns the newest instant."""
    newest = int(time.time())
    times = list(range(newest - 600, newest + 1, 5))
    writer = OpenMetricsWriter()
    values = [REGRESSED if t > newest - 20 else HEALTHY for t in times]
    writer.gauge("rt_fresh_error_ratio", {"job": "rt"}, times, values)
    vm_harness.load(server, writer.render())
    return newest


@pytest.fixture
def vm_factory() -> Iterator[list[vm_harness.VictoriaMetricsServer]]:
    started: list[vm_harness.VictoriaMetricsServer] = []
    try:
        yield started
    finally:
        for server in started:
            server.stop()


@pytest.mark.parametrize(
    ("latency_offset", "gates", "decision"),
    [
        ("0s", "instant", "ABORT"),
        (None, "instant", "ABORT"),
        ("0s", "range", "ABORT"),
        (None, "range", "HOLD"),
    ],
    ids=["offset-0s-instant", "offset-default-instant", "offset-0s-range", "offset-default-range"],
)
def test_regression_in_the_newest_30s_is_never_go(
    pytester: pytest.Pytester,
    tmp_path: Path,
    vm_factory: list[vm_harness.VictoriaMetricsServer],
    latency_offset: str | None,
    gates: str,
    decision: str,
) -> None:
    server = vm_harness.start(tmp_path / "vm", latency_offset=latency_offset)
    vm_factory.append(server)
    newest = _load_fresh_regression(server)
    pytester.makepyfile(test_gates=GATE_MODULES[gates])
    pytester.makefile(".toml", rollout=E2E_TOML)
    # Pinned at the newest sample: "now" as far as the data goes, within the hidden 30 s.
    result, record = run_against(pytester, server.url, at=newest)
    assert time.time() - newest < 25, "the run must fall inside the hidden 30 s to test it"
    assert result.ret == EXIT[decision], output(result)
    assert record["decision"] == decision
    if decision == "ABORT":
        return
    (gate,) = record["gates"]
    assert gate["outcome"] == "inconclusive", gate
    assert "-search.latencyOffset=0s" in gate["reason"], gate["reason"]
    # The points of the newest ~30 s carry the value from before them.
    hidden = re.search(r"with data from ([123]\d)s earlier", gate["reason"])
    assert hidden, gate["reason"]


def test_a_backend_that_evaluates_earlier_than_asked_is_inconclusive() -> None:
    """A backend (or caching proxy) that ignores `nocache=1` and moves instant queries back, as
    VictoriaMetrics does without it: `time()` at the pinned instant gives it away."""
    at = 1_796_000_000.0

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            query = parse_qs(urlparse(self.path).query)["query"][0]
            # What VictoriaMetrics answers: the time asked for as the label, 30 s earlier inside.
            value = str(at - 30) if query == "time()" else "0.001"
            body = {"status": "success", "data": {"resultType": "vector", "result": [
                {"metric": {} if query == "time()" else {"job": "rt"}, "value": [at, value]}
            ]}}  # fmt: skip
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        source = PrometheusSource(PromSettings(url=url, timeout_s=5, retries=0), at=at)
        gate = GateRecord(nodeid="shifted")
        with pytest.raises(Inconclusive, match=r"evaluated the query 30s before the pinned"):
            PromQuery(source, gate).value('rt_error_ratio{job="rt"}')
        with pytest.raises(Inconclusive, match=r"-search\.latencyOffset=0s"):
            PromQuery(source, gate).vector("rt_error_ratio")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
