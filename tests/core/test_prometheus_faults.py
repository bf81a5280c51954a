"""Fault injection: a fake Prometheus API that fails on purpose; every fault ends HOLD."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pytest_rollout.metrics.prometheus import ENV_CA_BUNDLE
from tests.core.helpers import gate_by_name, output, read_record, run_gates
from tests.core.prometheus_helpers import BAD_QUERY_ERROR, FakePrometheus, TlsPrometheus

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


# --------------------------------------------------------------------------------------------
# one failure budget per run: a hung backend costs (retries + 1) x timeout once, not per gate

HUNG_TOML = """
    [rollout]
    default_environment = "hung"

    [environments.hung]
    timeout = "1s"
    retries = 2
"""
# More gates than the shipped production profile's 9, so per-gate timeouts cannot hide in slack.
HUNG_GATES = 12
HUNG_BUDGET_S = (2 + 1) * 1  # (retries + 1) x timeout: what the whole run may spend waiting


def run_hung_gates(
    pytester: pytest.Pytester, url: str, record_path: Path, *, xdist: bool
) -> tuple[pytest.RunResult, float]:
    pytester.makefile(".toml", rollout=HUNG_TOML)
    gates = "\n".join(
        f"def test_gate_{i}(prom):\n    assert prom.value('rt_metric_{i}') < 0.01\n"
        for i in range(HUNG_GATES)
    )
    pytester.makepyfile(test_gates=f"import pytest\n\npytestmark = pytest.mark.phase2\n\n{gates}")
    started = time.monotonic()
    result = run_gates(
        pytester,
        "--rollout-prometheus-url",
        url,
        "--rollout-decision-json",
        str(record_path),
        xdist=xdist,
    )
    return result, time.monotonic() - started


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "n2"])
def test_hanging_backend_holds_whole_run_within_one_failure_budget(
    pytester: pytest.Pytester, hanging_url: str, refused_url: str, xdist: bool
) -> None:
    record_path = pytester.path / "decision.json"
    result, took = run_hung_gates(pytester, hanging_url, record_path, xdist=xdist)

    if xdist:
        # Worker start-up on this shared machine varies by seconds: measure it with the same
        # run against a backend that fails at once, and bound what the hang adds to it.
        _, baseline = run_hung_gates(pytester, refused_url, pytester.path / "r.json", xdist=True)
        assert took - baseline < HUNG_BUDGET_S + 6, (
            f"a hung backend added {took - baseline:.1f}s to the run (budget {HUNG_BUDGET_S}s)"
        )
    else:
        budget = HUNG_BUDGET_S + 15
        assert took < budget, f"a hung backend took {took:.1f}s to HOLD (budget {budget}s)"
    assert result.ret == 1, output(result)
    record = read_record(record_path)
    assert record["decision"] == "HOLD"
    gates_ = record["gates"]
    assert len(gates_) == HUNG_GATES
    reasons = set()
    for gate in gates_:
        assert gate["outcome"] == "inconclusive", gate
        backend_reason, _, query = gate["reason"].partition("; query: ")
        assert query == f"rt_metric_{gate['nodeid'].rpartition('_')[2]}"
        assert gate["queries"] == [query]  # recorded, even when no longer sent
        reasons.add(backend_reason)
    assert len(reasons) == 1, reasons  # one reason, the same for every gate
    reason = reasons.pop()
    # Truthful: the real per-attempt timeout and the number of attempts, and where to set them.
    assert f"no answer from {hanging_url} within 1s per attempt, 3 attempts" in reason
    assert "timeout = 1s, retries = 2" in reason


# --------------------------------------------------------------------------------------------
# TLS


def test_untrusted_certificate_names_tls_and_the_ca_bundle_variable(
    pytester: pytest.Pytester, tls_prom: TlsPrometheus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENV_CA_BUNDLE, raising=False)
    pytester.makefile(".toml", rollout=FAULT_TOML)
    pytester.makepyfile(test_gates=FAULT_GATES)
    record_path = pytester.path / "decision.json"
    result = run_gates(
        pytester,
        "--rollout-prometheus-url",
        tls_prom.url,
        "--rollout-decision-json",
        str(record_path),
    )
    assert result.ret == 1, output(result)
    for gate in read_record(record_path)["gates"]:
        assert gate["outcome"] == "inconclusive", gate
        assert "cannot connect" not in gate["reason"]
        assert f"TLS verification of {tls_prom.url} failed" in gate["reason"]
        assert "self-signed certificate" in gate["reason"]  # OpenSSL's own words
        assert ENV_CA_BUNDLE in gate["reason"]


def test_ca_bundle_variable_makes_the_self_signed_backend_trusted(
    pytester: pytest.Pytester, tls_prom: TlsPrometheus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_CA_BUNDLE, tls_prom.ca_bundle)
    pytester.makefile(".toml", rollout=FAULT_TOML)
    pytester.makepyfile(
        test_gates="""
        import pytest

        pytestmark = pytest.mark.phase2

        def test_error_ratio_below_1_percent(prom):
            assert prom.value("rt_error_ratio") < 0.01
        """
    )
    result = run_gates(pytester, "--rollout-prometheus-url", tls_prom.url)
    assert result.ret == 0, output(result)


def test_missing_ca_bundle_file_is_named(
    pytester: pytest.Pytester, tls_prom: TlsPrometheus, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(pytester.path / "no-such-ca.pem")
    monkeypatch.setenv(ENV_CA_BUNDLE, missing)
    pytester.makefile(".toml", rollout=FAULT_TOML)
    pytester.makepyfile(test_gates=FAULT_GATES)
    record_path = pytester.path / "decision.json"
    result = run_gates(
        pytester,
        "--rollout-prometheus-url",
        tls_prom.url,
        "--rollout-decision-json",
        str(record_path),
    )
    assert result.ret == 1, output(result)
    for gate in read_record(record_path)["gates"]:
        assert gate["outcome"] == "inconclusive", gate
        assert f"{ENV_CA_BUNDLE}={missing}" in gate["reason"]
