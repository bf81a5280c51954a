"""Small pure pieces of the report: redaction, reproduce command, series fetching, plots."""

from __future__ import annotations

import base64
import math
from typing import Any

import pytest

from pytest_rollout.metrics.prometheus import RangeSeries
from pytest_rollout.metrics.series import MAX_POINTS, fetch_series
from pytest_rollout.outcomes import inconclusive
from pytest_rollout.redact import REDACTED, Redactor
from pytest_rollout.report import plots
from pytest_rollout.report.provenance import reproduce_args


def test_redactor_removes_env_url_and_option_secrets() -> None:
    redactor = Redactor.build(
        environ={"ROLLOUT_PROMETHEUS_TOKEN": "tok-123456", "HOME": "/root", "X_KEY": "short"},
        args=[
            "--api-token",
            "opt-secret-1",
            "--db-password=opt-secret-2",
            "--metadata",
            "DEPLOY_TOKEN",
            "md-secret-3",
            "tests/test_keyboard.py",
        ],
        urls=["https://u:url-pass-4@prom.example:9090/api?token=qs-secret-5"],
    )
    text = (
        "tok-123456 opt-secret-1 opt-secret-2 md-secret-3 url-pass-4 qs-secret-5 /root "
        "see https://u:url-pass-4@prom.example:9090/api?token=qs-secret-5 now"
    )
    cleaned = redactor(text)
    for secret in (
        "tok-123456",
        "opt-secret-1",
        "opt-secret-2",
        "md-secret-3",
        "url-pass-4",
        "qs-secret-5",
    ):
        assert secret not in cleaned
    assert "/root" in cleaned  # not a secret-named variable
    assert "https://prom.example:9090/api now" in cleaned
    assert redactor.args(
        ["--api-token", "x", "--password=y", "tests/test_keyboard.py", "-k", "key"]
    ) == ["--api-token", REDACTED, f"--password={REDACTED}", "tests/test_keyboard.py", "-k", "key"]


def test_reproduce_args_drop_outputs_and_rollback_and_pin_the_instant() -> None:
    args = [
        "gates",
        "-m",
        "phase2",
        "--html",
        "r.html",
        "--self-contained-html",
        "--junitxml=j.xml",
        "--rollout-decision-json",
        "d.json",
        "--rollout-at=now-ish",
        "--rollout-on-abort=rollback",
        "--rollout-env",
        "old",
        "-n",
        "2",
    ]
    assert reproduce_args(
        args, at="2026-11-25T14:00:00Z", environment="staging", redactor=Redactor()
    ) == [
        "gates",
        "-m",
        "phase2",
        "-n",
        "2",
        "--rollout-at=2026-11-25T14:00:00Z",
        "--rollout-env=staging",
    ]


class FakeProm:
    def __init__(self, result: list[RangeSeries] | None) -> None:
        self.result = result
        self.calls: list[dict[str, Any]] = []

    def range(
        self,
        query: str,
        *,
        window_s: float,
        step_s: float,
        allow_empty: bool = False,
        allow_nan: bool = False,
    ) -> list[RangeSeries]:
        self.calls.append({"query": query, "window_s": window_s, "step_s": step_s})
        if self.result is None:
            inconclusive("cannot connect")
        return self.result


def test_fetch_series_groups_by_label_and_drops_non_finite_points() -> None:
    prom = FakeProm(
        [
            RangeSeries({"group": "control"}, [(1.0, 0.01), (2.0, math.nan), (3.0, 0.02)]),
            RangeSeries({"group": "treatment"}, [(1.0, 0.03)]),
            RangeSeries({"group": "treatment", "pod": "b"}, [(1.0, 9.9)]),  # duplicate: first wins
            RangeSeries({"other": "x"}, [(1.0, 1.0)]),
        ]
    )
    series = fetch_series(prom, "q", "group", window_s=7 * 86400, step_s=60)
    assert series == {"control": [[1.0, 0.01], [3.0, 0.02]], "treatment": [[1.0, 0.03]]}
    assert prom.calls[0]["step_s"] == pytest.approx(7 * 86400 / MAX_POINTS)


def test_fetch_series_failure_gives_no_series_not_an_outcome() -> None:
    assert fetch_series(FakeProm(None), "q", "group", 3600, 60) == {}


def test_plot_draws_pairs_single_series_and_nothing() -> None:
    pair = {
        "control": [[1.7e9 + 60 * i, 0.010] for i in range(20)],
        "treatment": [[1.7e9 + 60 * i, 0.012] for i in range(20)],
    }
    assert plots.threshold_target(pair, {}) == "delta"
    assert plots.threshold_target({"value": pair["control"]}, {}) == "value"
    assert plots.threshold_target(pair, {"threshold_on": "none"}) == "none"
    two_panels = plots.render_png(
        pair, metric="p99", unit="s", threshold=0.01, threshold_on="delta"
    )
    one_panel = plots.render_png(
        {"value": pair["control"]},
        metric="rss",
        unit="bytes",
        threshold=0.011,
        threshold_on="value",
    )
    assert two_panels and one_panel
    for png in (two_panels, one_panel):
        assert base64.b64decode(png).startswith(b"\x89PNG")
    assert len(base64.b64decode(two_panels)) > len(base64.b64decode(one_panel))
    assert (
        plots.render_png(
            {"control": [[1.0, None]]}, metric="m", unit="", threshold=None, threshold_on="value"
        )
        is None
    )
