"""No credential from the environment reaches the report, the record, JUnit or the terminal."""

from __future__ import annotations

import pytest

from tests.report.helpers import AT

SECRETS = {
    "ROLLOUT_PROMETHEUS_TOKEN": "env-bearer-token-7Hq2",
    "ROLLOUT_PROMETHEUS_PASSWORD": "env-basic-password-9Xv4",
    "DEPLOY_API_KEY": "env-api-key-3Jm8",
    "GITHUB_TOKEN": "ghp_envGithubToken5Lp1",
}
URL_PASSWORD = "url-userinfo-password-2Kd6"
URL_QUERY_TOKEN = "url-query-token-8Rt3"
METADATA_TOKEN = "metadata-token-4Wz9"

GATES = """
import os
import pytest


@pytest.mark.phase2
def test_canary_reads_prometheus(prom):
    prom.value("sum(rate(engram_recall_total[5m]))")


@pytest.mark.phase2
def test_canary_gate_that_prints_its_environment(gate):
    # A careless gate: the token lands in captured output, which the HTML log shows.
    print("token in use:", os.environ["ROLLOUT_PROMETHEUS_TOKEN"])
    gate.observe(metric="noise", observed=1.0, threshold=2.0)
"""


def test_no_credential_appears_anywhere(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ROLLOUT_PROMETHEUS_USER", "alice")
    # pytest-metadata copies Jenkins' BUILD_URL into the report's Environment table.
    monkeypatch.setenv("BUILD_URL", f"https://ci.example/job/7/?token={URL_QUERY_TOKEN}")
    pytester.makepyfile(test_gates=GATES)
    out = pytester.path / "out"
    # Port 9 (discard) on loopback: connection refused at once, so the gate is inconclusive.
    url = f"http://alice:{URL_PASSWORD}@127.0.0.1:9/prom?token={URL_QUERY_TOKEN}"
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-m",
        "phase2",
        f"--rollout-at={AT}",
        f"--rollout-prometheus-url={url}",
        "--metadata",
        "DEPLOY_TOKEN",
        METADATA_TOKEN,
        f"--html={out / 'report.html'}",
        "--self-contained-html",
        f"--junitxml={out / 'junit.xml'}",
        f"--rollout-decision-json={out / 'decision.json'}",
    )
    assert result.ret == 1, result.stdout.str()  # HOLD: Prometheus unreachable -> inconclusive

    report = (out / "report.html").read_text()
    artifacts = {
        "report": report,
        "decision record": (out / "decision.json").read_text(),
        "junit": (out / "junit.xml").read_text(),
        "terminal": result.stdout.str() + result.stderr.str(),
    }
    # The run really went through the paths that could leak: URL, metadata, captured output.
    assert "http://127.0.0.1:9/prom" in report
    assert "DEPLOY_TOKEN" in report and "token in use: [redacted]" in report
    assert "ci.example/job/7" in report
    for where, text in artifacts.items():
        for secret in [*SECRETS.values(), URL_PASSWORD, URL_QUERY_TOKEN, METADATA_TOKEN]:
            assert secret not in text, f"{secret!r} leaked into the {where}"
