"""Fail closed around the decision: stale and partial GOs, unwritable records, marker typos,
future instants and credentials in a failing gate's arguments (issue: fail closed everywhere).

Each test reproduces a defect measured on the earlier code; the fault matrix (tests/faults/)
repeats them among every other fault.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.core.helpers import EXIT, gate_module, gate_source, output, read_record, run_gates

RECORD = "--rollout-decision-json=out/phase2.json"


@pytest.fixture
def gates(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(
        test_gates=gate_module(
            gate_source("test_sample_ratio_ok", "pass"),
            gate_source("test_p99_within_margin", "pass"),
            gate_source("test_abort_when_p99_regresses", "fail", abort=True),
        )
    )
    return pytester


def _stale_go(pytester: pytest.Pytester) -> Path:
    path = pytester.path / "out" / "phase2.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"decision": "GO", "reason": "yesterday"}))
    return path


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_a_k_subset_of_a_phase_never_decides_go(gates: pytest.Pytester, xdist: bool) -> None:
    result = run_gates(gates, "-m", "phase2", "-k", "sample_ratio", RECORD, xdist=xdist)
    assert result.ret == EXIT["HOLD"], output(result)
    record = read_record(gates.path / "out" / "phase2.json")
    assert record["decision"] == "HOLD"
    assert record["reason"].startswith("partial run: 1 of 3 gates of phase2 ran"), record
    assert record["partial"]["left_out"] == [
        "test_gates.py::test_abort_when_p99_regresses",
        "test_gates.py::test_p99_within_margin",
    ]


def test_the_whole_phase_still_aborts(gates: pytest.Pytester) -> None:
    result = run_gates(gates, "-m", "phase2", RECORD)
    assert result.ret == EXIT["ABORT"], output(result)
    assert "partial" not in read_record(gates.path / "out" / "phase2.json")


def test_a_collection_error_replaces_the_previous_go(gates: pytest.Pytester) -> None:
    stale = _stale_go(gates)
    gates.makepyfile(test_broken="import no_such_module_anywhere\n")
    result = run_gates(gates, "-m", "phase2", RECORD)
    assert result.ret == 2, output(result)
    record = read_record(stale)
    assert record["decision"] == "HOLD" and record["unfinished"] is True
    assert "exit 2" in record["reason"]


def test_a_usage_error_replaces_the_previous_go(gates: pytest.Pytester) -> None:
    stale = _stale_go(gates)
    result = run_gates(gates, "-m", "phase2", RECORD, "--rollout-at=yesterday-ish")
    assert result.ret == 4, output(result)
    record = read_record(stale)
    assert record["decision"] == "HOLD" and "usage error" in record["reason"]


def test_an_instant_in_the_future_is_refused(gates: pytest.Pytester) -> None:
    result = run_gates(gates, "-m", "phase2", "--rollout-at=2999-01-01T00:00:00Z")
    assert result.ret == 4
    assert "is in the future" in output(result)


def test_an_abort_whose_record_cannot_be_written_still_exits_10(gates: pytest.Pytester) -> None:
    (gates.path / "afile").write_text("a regular file, not a folder")
    result = run_gates(
        gates, "-m", "phase2", "--rollout-decision-json=afile/phase2.json", subprocess=True
    )
    assert result.ret == EXIT["ABORT"], output(result)
    stderr = result.stderr.str()
    assert "cannot write the decision record to afile/phase2.json" in stderr
    fallback = stderr.split("written to ", 1)[1].split(" instead", 1)[0]
    assert read_record(Path(fallback))["decision"] == "ABORT"
    Path(fallback).unlink()


def test_an_html_report_path_that_cannot_be_created_is_a_usage_error(
    gates: pytest.Pytester,
) -> None:
    """pytest-html itself would crash with an INTERNALERROR (exit 3) and no record."""
    stale = _stale_go(gates)
    (gates.path / "afile").write_text("not a folder")
    result = run_gates(gates, "-m", "phase2", RECORD, "--html=afile/report.html")
    assert result.ret == 4, output(result)
    assert "afile is not a directory" in output(result)
    assert read_record(stale)["decision"] == "HOLD"


def test_a_prometheus_url_without_scheme_is_a_usage_error(gates: pytest.Pytester) -> None:
    result = run_gates(gates, "-m", "phase2", "--rollout-prometheus-url=prom.internal:9090")
    assert result.ret == 4, output(result)
    assert "--rollout-prometheus-url" in output(result)


def test_a_marker_typo_on_an_abort_trigger_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_gates="import pytest\n\n@pytest.mark.phase2\n@pytest.mark.abrot\n"
        "def test_abort_when_p99_regresses():\n    assert False\n"
    )
    result = run_gates(pytester, "-m", "phase2", "-W", "ignore::pytest.PytestUnknownMarkWarning")
    assert result.ret == 4, output(result)
    assert "unknown marker @pytest.mark.abrot (did you mean @pytest.mark.abort?)" in output(result)


def test_abort_if_worse_without_the_abort_marker_is_a_gate_error(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        "import pytest\nfrom pytest_rollout.ab import Comparison\n"
        "@pytest.fixture\ndef comparison(gate):\n"
        "    c = Comparison.__new__(Comparison)\n"
        "    object.__setattr__(c, 'gate', gate)\n    return c\n"
    )
    pytester.makepyfile(
        test_gates="import pytest\n\n@pytest.mark.phase2\n"
        "def test_abort_when_p99_regresses(comparison):\n    comparison.abort_if_worse()\n"
    )
    result = run_gates(pytester, "-m", "phase2")
    assert result.ret == EXIT["HOLD"], output(result)
    assert "is not marked @pytest.mark.abort" in output(result)


@pytest.mark.parametrize("flags", [["-l"], ["-vv"], ["--junitxml=junit.xml"]])
def test_a_failing_gate_never_prints_the_prometheus_password(
    pytester: pytest.Pytester, flags: list[str]
) -> None:
    pytester.makepyfile(
        test_gates="import pytest\n\n@pytest.mark.phase2\n"
        "def test_uses_context(rollout, phase, gate):\n    assert rollout is None\n"
    )
    result = run_gates(
        pytester,
        "-m",
        "phase2",
        "--rollout-prometheus-url=http://alice:S3cretPw0rd@127.0.0.1:9/",
        *flags,
        subprocess=True,
    )
    assert result.ret == EXIT["HOLD"]
    text = output(result) + result.stderr.str()
    junit = pytester.path / "junit.xml"
    if junit.exists():
        text += junit.read_text()
    assert "RolloutContext(" in text or "rollout" in text
    assert "S3cretPw0rd" not in text


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
def test_a_waived_gate_is_left_out_and_recorded_without_making_the_run_partial(
    pytester: pytest.Pytester, xdist: bool
) -> None:
    pytester.makefile(
        ".toml",
        rollout='[environments.ci.phases.phase2.waive]\nsoak = "a soak cannot run in ci"\n'
        '[environments.ci.phases.phase0.waive]\nbaseline = "no baseline in ci"\n',
    )
    pytester.makepyfile(
        test_gates=gate_module(
            gate_source("test_p99_within_margin", "pass"),
            gate_source("test_soak_rss_growth", "fail"),
            gate_source("test_latency_vs_baseline", "fail", phase="phase0"),
        )
    )
    result = run_gates(pytester, "-m", "phase2", "--rollout-env=ci", RECORD, xdist=xdist)
    assert result.ret == EXIT["GO"], output(result)
    record = read_record(pytester.path / "out" / "phase2.json")
    assert record["waived"] == {
        "test_gates.py::test_soak_rss_growth": "waived in this environment (soak): "
        "a soak cannot run in ci"
    }, "only the decided phase's waivers are listed"
    assert "partial" not in record
