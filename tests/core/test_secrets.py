"""Credentials reach Prometheus and nothing else: not the terminal, not the decision record."""

from __future__ import annotations

import base64
import uuid

import pytest

from tests.core.helpers import output, read_record, run_gates
from tests.core.prometheus_helpers import FakePrometheus

SECRET_GATES = """
    import pytest

    pytestmark = pytest.mark.phase2

    def test_error_ratio_below_1_percent(prom, gate):
        value = prom.value("rt_error_ratio")
        gate.observe(metric="error ratio", observed=value, threshold=0.01)
        assert value < 0.01

    def test_fails_with_locals_shown(prom, rollout):
        settings = prom.source.settings
        assert prom.value("rt_error_ratio") > 1, settings
"""


def _everything_written(pytester: pytest.Pytester, result: pytest.RunResult) -> str:
    files = [
        p.read_text()
        for p in pytester.path.iterdir()
        if p.is_file() and p.suffix in (".json", ".xml")
    ]
    return output(result) + "\n".join(files)


def test_bearer_token_is_sent_but_never_shown(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, fake_prom: FakePrometheus
) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    mode = f"auth-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ROLLOUT_PROMETHEUS_TOKEN", token)
    pytester.makepyfile(test_gates=SECRET_GATES)
    record_path = pytester.path / "decision.json"
    result = run_gates(
        pytester,
        "--rollout-prometheus-url",
        fake_prom.at(mode),
        "--rollout-decision-json",
        str(record_path),
        "-l",
        "-vv",
        "--junitxml",
        str(pytester.path / "junit.xml"),
    )
    assert result.ret == 1, output(result)

    seen = [r for r in fake_prom.seen if r["mode"] == mode]
    assert seen, "the gates never reached the fake Prometheus"
    assert {r["authorization"] for r in seen} == {f"Bearer {token}"}
    record = read_record(record_path)
    assert record["gates"][0]["observed"] == 0.001
    written = _everything_written(pytester, result)
    assert token not in written
    assert token[4:] not in written  # not even partly


def test_basic_auth_in_url_is_sent_but_redacted(
    pytester: pytest.Pytester, fake_prom: FakePrometheus
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    mode = f"basic-{uuid.uuid4().hex[:8]}"
    host_and_path = fake_prom.at(mode).removeprefix("http://")
    url = f"http://alice:{password}@{host_and_path}"
    pytester.makepyfile(test_gates=SECRET_GATES)
    record_path = pytester.path / "decision.json"
    result = run_gates(
        pytester,
        "--rollout-prometheus-url",
        url,
        "--rollout-decision-json",
        str(record_path),
        "-l",
        "--junitxml",
        str(pytester.path / "junit.xml"),
    )
    assert result.ret == 1, output(result)

    seen = [r for r in fake_prom.seen if r["mode"] == mode]
    expected = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
    assert seen and {r["authorization"] for r in seen} == {expected}
    record = read_record(record_path)
    assert record["context"]["prometheus_url"] == fake_prom.at(mode)
    written = _everything_written(pytester, result)
    assert password not in written
    assert expected not in written


def test_credentials_redacted_in_connection_errors(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, refused_url: str
) -> None:
    password = f"pw-{uuid.uuid4().hex}"
    port = int(refused_url.rsplit(":", 1)[1])
    monkeypatch.setenv(
        "ROLLOUT_PROMETHEUS_URL",
        f"http://alice:{password}@127.0.0.1:{port}/prom?api_key={password}",
    )
    pytester.makepyfile(test_gates=SECRET_GATES)
    record_path = pytester.path / "decision.json"
    result = run_gates(pytester, "--rollout-decision-json", str(record_path))
    assert result.ret == 1, output(result)
    record = read_record(record_path)
    assert all(g["outcome"] == "inconclusive" for g in record["gates"])
    assert f"cannot connect to http://127.0.0.1:{port}/prom" in record["gates"][0]["reason"]
    assert record["context"]["prometheus_url"] == f"http://127.0.0.1:{port}/prom"
    assert password not in _everything_written(pytester, result)
