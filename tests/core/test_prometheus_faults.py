"""Fault injection: a fake Prometheus API that fails on purpose; every fault ends HOLD."""

from __future__ import annotations

import time

import pytest

from tests.core.conftest import BAD_QUERY_ERROR, FakePrometheus
from tests.core.helpers import gate_by_name, output, read_record, run_gates

FAULT_TOML = """
    [rollout]
    default_environment = "faulty"

    [environments.faulty]
    timeout = "1s"
    retries = 0
"""

FAULT_GATES = """
    import pytest

    pytestmark = pytest.mark.phase2

    def test_error_ratio_below_1_percent(prom):
        assert prom.value("sum(rate(rt_errors_total[5m]))") < 0.01

    @pytest.mark.abort
    def test_abort_when_p99_over_20ms(prom):
        assert prom.value("rt_p99_delta_seconds") < 0.020
"""


def fault_url(fake_prom: FakePrometheus, refused_url: str, fault: str) -> str:
    return refused_url if fault == "refused" else fake_prom.at(fault)


FAULTS = [
    ("http500", ["HTTP 500 from the metrics backend"]),
    ("badquery", ["HTTP 400, the query was rejected", BAD_QUERY_ERROR]),
    ("slow", ["no answer from", "within 1s"]),
    ("garbage", ["not a Prometheus API response"]),
    ("nodata", ["not a Prometheus API response"]),
    ("refused", ["cannot connect to http://127.0.0.1:"]),
]


@pytest.mark.parametrize(("fault", "fragments"), FAULTS, ids=[f for f, _ in FAULTS])
def test_backend_fault_is_hold_naming_gate_and_fault(
    pytester: pytest.Pytester,
    fake_prom: FakePrometheus,
    refused_url: str,
    fault: str,
    fragments: list[str],
) -> None:
    pytester.makefile(".toml", rollout=FAULT_TOML)
    pytester.makepyfile(test_gates=FAULT_GATES)
    record_path = pytester.path / "decision.json"
    url = fault_url(fake_prom, refused_url, fault)
    started = time.monotonic()
    result = run_gates(
        pytester, "--rollout-prometheus-url", url, "--rollout-decision-json", str(record_path)
    )
    took = time.monotonic() - started

    # A broken backend never lets a rollout go ahead, and never rolls it back by itself.
    assert result.ret == 1, output(result)
    record = read_record(record_path)
    assert record["decision"] == "HOLD"
    stdout = result.stdout.str()
    for name, query in (
        ("test_error_ratio_below_1_percent", "sum(rate(rt_errors_total[5m]))"),
        ("test_abort_when_p99_over_20ms", "rt_p99_delta_seconds"),
    ):
        gate = gate_by_name(record, name)
        assert gate["outcome"] == "inconclusive", gate
        for fragment in fragments:
            assert fragment in gate["reason"], (fragment, gate["reason"])
        assert query in gate["reason"]  # the reason says which query failed
        assert gate["queries"] == [query]
        # The terminal names the gate and the fault on one line.
        assert any(name in line and fragments[0] in line for line in stdout.splitlines()), stdout
    assert "INCONCLUSIVE" in stdout
    assert "Traceback" not in output(result)
    if fault == "slow":
        assert took < 10, f"two 1s timeouts took {took:.1f}s"
