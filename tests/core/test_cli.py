"""The `rollout` console script, run as users run it: in a subprocess."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import pytest_rollout


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args), capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )


@pytest.mark.parametrize("entry", ["script", "module"])
def test_help_and_version(entry: str) -> None:
    if entry == "script":
        script = shutil.which("rollout")
        assert script, "the rollout console script is not installed"
        prefix = [script]
    else:
        prefix = [sys.executable, "-m", "pytest_rollout"]
    helped = _run(*prefix, "--help")
    assert helped.returncode == 0, helped.stderr
    assert "usage: rollout" in helped.stdout
    assert "Operate a progressive rollout" in helped.stdout
    version = _run(*prefix, "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"pytest-rollout {pytest_rollout.__version__}"
    assert "Traceback" not in helped.stderr + version.stderr


def test_pytest_help_lists_every_rollout_option(pytester: pytest.Pytester) -> None:
    from pytest_rollout import plugin

    result = pytester.runpytest("--help")
    assert result.ret == 0
    for option in (
        plugin.OPT_CONFIG,
        plugin.OPT_ENV,
        plugin.OPT_PROMETHEUS_URL,
        plugin.OPT_AT,
        plugin.OPT_WINDOW,
        plugin.OPT_DECISION_JSON,
        plugin.OPT_FLAGS,
        plugin.OPT_ON_ABORT,
    ):
        assert option in result.stdout.str(), option
