"""Where a decision came from: the command that reproduces it, the gates' commit, who ran it."""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from pytest_rollout._state import RunView
from pytest_rollout.redact import Redactor

# Options that write artifacts or act on the world: a re-run to check a decision must do neither.
_DROP_WITH_VALUE = (
    "--html",
    "--junitxml",
    "--junit-xml",
    "--rollout-decision-json",
    "--rollout-at",
    "--rollout-env",
    "--rollout-on-abort",
    "--css",
    "--result-log",
    "--report-log",
    "--basetemp",
)
_DROP_FLAG = ("--self-contained-html",)


def redactor_for(config: pytest.Config, view: RunView) -> Redactor:
    """Everything secret this run was given: credential env vars, URLs with user info or query
    strings (on the command line, in the environment, in rollout.toml), secret-named options."""
    return Redactor.build(
        args=[str(a) for a in config.invocation_params.args],
        urls=[*view.secret_urls(), os.environ.get("ROLLOUT_PROMETHEUS_URL")],
    )


def reproduce_args(
    args: Sequence[str], *, at: str, environment: str | None, redactor: Redactor
) -> list[str]:
    """The run's arguments minus output paths and rollback, plus the pinned instant and env."""
    kept: list[str] = []
    skip_next = False
    for arg in args:
        if skip_next:
            skip_next = False
            continue
        name = arg.split("=", 1)[0]
        if name in _DROP_FLAG:
            continue
        if name in _DROP_WITH_VALUE:
            skip_next = "=" not in arg
            continue
        kept.append(arg)
    kept.append(f"--rollout-at={at}")
    if environment:
        kept.append(f"--rollout-env={environment}")
    return redactor.args(kept)


def reproduce_command(
    config: pytest.Config, *, at: str, environment: str | None, redactor: Redactor
) -> str:
    """A shell command that re-evaluates this run's gates at the same instant."""
    args = reproduce_args(
        [str(a) for a in config.invocation_params.args],
        at=at,
        environment=environment,
        redactor=redactor,
    )
    return shlex.join(["pytest", *args])


def git_commit(directory: Path) -> str:
    """``git rev-parse HEAD`` of the gates (``+dirty`` with uncommitted changes), or "unknown"."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "."],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return f"{head}+dirty" if status else head


def ci_identity(redactor: Redactor, environ: Mapping[str, str] | None = None) -> str | None:
    """A link or name for the CI job that ran the gates, when running in CI."""
    env = os.environ if environ is None else environ
    if env.get("GITHUB_RUN_ID") and env.get("GITHUB_REPOSITORY"):
        server = env.get("GITHUB_SERVER_URL", "https://github.com")
        job = f"{server}/{env['GITHUB_REPOSITORY']}/actions/runs/{env['GITHUB_RUN_ID']}"
        return redactor(job)
    for name in ("CI_JOB_URL", "BUILD_URL", "CIRCLE_BUILD_URL", "BUILDKITE_BUILD_URL"):
        if env.get(name):
            return redactor(env[name])
    if env.get("CI"):
        return "CI (no job URL in the environment)"
    return None
