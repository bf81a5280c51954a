"""Manifests that let a rollout controller ask the gates: Argo Rollouts and Flagger.

``rollout render argo`` writes an AnalysisTemplate (the Web provider calls ``rollout serve``; the
Job provider runs ``pytest gates -m PHASE`` in the image); ``rollout render flagger`` writes the
webhooks of a Canary's ``spec.analysis``.  Both are rendered deterministically, so the committed
copies under deploy/ are checked against a fresh render.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytest_rollout.config import ConfigError, find_config, load_config
from pytest_rollout.durations import parse_duration
from pytest_rollout.monitoring.yamlout import dump

# One Secret holds the serve token (and any backend credentials); its keys become env vars.
SECRET_NAME = "pytest-rollout"
TOKEN_KEY = "ROLLOUT_SERVE_TOKEN"
TOKEN_ARG = "rollout-serve-token"
GATES_IN_IMAGE = "/srv/gates"  # where the Dockerfile copies gates/
FLAGGER_GATES = ("confirm-rollout", "confirm-traffic-increase", "confirm-promotion")


@dataclass(frozen=True)
class Target:
    """What every manifest needs: the phase, and how its gate is reached."""

    phase: str
    url: str = ""  # rollout serve's base URL (Web provider, Flagger)
    timeout_s: int = 600
    count: int = 1
    interval_s: int = 600
    image: str = ""  # Job provider
    pytest_args: tuple[str, ...] = ()


def argo_web(t: Target) -> dict[str, Any]:
    """An AnalysisTemplate whose one metric POSTs to serve's evaluate endpoint.

    GO succeeds, ABORT fails, and HOLD matches neither condition, so Argo marks the measurement
    Inconclusive and (inconclusiveLimit 0) pauses the rollout until a person resumes it.
    """
    web = {
        "method": "POST",
        "url": f"{t.url}/v1/phases/{t.phase}/evaluate",
        "headers": [{"key": "Authorization", "value": f"Bearer {{{{args.{TOKEN_ARG}}}}}"}],
        "jsonPath": "{$.decision}",
        "timeoutSeconds": t.timeout_s,
    }
    metric = {
        "name": f"{t.phase}-gates",
        **_counting(t),
        "successCondition": 'result == "GO"',
        "failureCondition": 'result == "ABORT"',
        "failureLimit": 0,
        "inconclusiveLimit": 0,
        "provider": {"web": web},
    }
    args = [
        {"name": TOKEN_ARG, "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": TOKEN_KEY}}}
    ]
    return _template(t.phase, "", {"args": args, "metrics": [metric]})


def argo_job(t: Target) -> dict[str, Any]:
    """An AnalysisTemplate whose metric is a Job running the phase's gates once.

    A Job only succeeds or fails: exit 0 (GO) succeeds, any other exit (HOLD 1, ABORT 10) fails,
    so HOLD aborts here.  No retries: a second run would be a second look at the same data.
    """
    container = {
        "name": "gates",
        "image": t.image,
        "command": [
            "python",
            "-m",
            "pytest",
            GATES_IN_IMAGE,
            "-m",
            t.phase,
            "-p",
            "no:cacheprovider",
            *t.pytest_args,
        ],
        "envFrom": [{"secretRef": {"name": SECRET_NAME}}],
    }
    job = {
        "metadata": {"labels": _labels(t.phase)},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": _labels(t.phase)},
                "spec": {"restartPolicy": "Never", "containers": [container]},
            },
        },
    }
    metric = {
        "name": f"{t.phase}-gates",
        **_counting(t),
        "failureLimit": 0,
        "provider": {"job": job},
    }
    return _template(t.phase, "-job", {"metrics": [metric]})


def flagger_webhooks(t: Target) -> dict[str, Any]:
    """The ``webhooks`` list of a Canary's ``spec.analysis``: gates on GO, rollback on ABORT."""
    hooks: list[dict[str, Any]] = [
        {
            "name": f"pytest-rollout-{t.phase}-{kind}",
            "type": kind,
            "url": f"{t.url}/v1/flagger/{t.phase}/gate",
            "timeout": f"{t.timeout_s}s",
            "metadata": {"rollout_phase": t.phase},
        }
        for kind in FLAGGER_GATES
    ]
    hooks.append(
        {
            "name": f"pytest-rollout-{t.phase}-rollback",
            "type": "rollback",
            "url": f"{t.url}/v1/flagger/{t.phase}/rollback",
            "timeout": f"{t.timeout_s}s",
            "metadata": {"rollout_phase": t.phase},
        }
    )
    return {"webhooks": hooks}


def _counting(t: Target) -> dict[str, Any]:
    # Argo rejects count > 1 without an interval; one look per analysis step needs neither.
    if t.count == 1:
        return {"count": 1}
    return {"count": t.count, "interval": f"{t.interval_s}s"}


def _labels(phase: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "pytest-rollout", "pytest-rollout/phase": phase}


def _template(phase: str, suffix: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisTemplate",
        "metadata": {"name": f"pytest-rollout-{phase}{suffix}", "labels": _labels(phase)},
        "spec": spec,
    }


def render_text(document: dict[str, Any], argv: Sequence[str], note: str) -> str:
    """The YAML with a header that says how to render it again."""
    return (
        f"# Rendered by `rollout {' '.join(argv)}`.\n"
        f"# {note}\n"
        "# Do not edit: render again (tests compare deploy/ with a fresh render).\n"
        + dump(document)
    )


# ---------------------------------------------------------------------------------------------
# command line (sub-targets of `rollout render`)


def add_parsers(what: Any) -> None:
    argo = what.add_parser(
        "argo",
        help="an Argo Rollouts AnalysisTemplate asking the gates of one phase",
        description="Write an AnalysisTemplate for --phase: the Web provider POSTs to `rollout "
        "serve` (GO succeeds, ABORT fails, HOLD is Inconclusive and pauses); --provider job "
        "runs `pytest gates -m PHASE` in --image instead (a Job cannot be Inconclusive: HOLD "
        "fails the analysis).",
    )
    _common(argo, default_timeout="10m")
    argo.add_argument("--provider", choices=("web", "job"), default="web")
    argo.add_argument("--image", default="", help="the image for --provider job")
    argo.add_argument(
        "--count", type=int, default=1, help="measurements per analysis (default 1: one look)"
    )
    argo.add_argument(
        "--interval", default="10m", help="time between measurements when --count > 1"
    )
    flagger = what.add_parser(
        "flagger",
        help="the webhooks of a Flagger Canary's spec.analysis for one phase",
        description="Write the confirm-rollout, confirm-traffic-increase and confirm-promotion "
        "gates (200 only on GO, so HOLD keeps Flagger waiting) and the rollback hook for --phase.",
    )
    _common(flagger, default_timeout="60s")


def _common(parser: argparse.ArgumentParser, default_timeout: str) -> None:
    parser.add_argument("--phase", required=True, help="the phase marker, e.g. phase2")
    parser.add_argument(
        "--url", default="", help="rollout serve's base URL, e.g. http://pytest-rollout.NS.svc:8080"
    )
    parser.add_argument(
        "--config", type=Path, default=None, help="rollout.toml (default: found as pytest does)"
    )
    parser.add_argument(
        "--timeout", default=default_timeout, help=f"request timeout (default {default_timeout})"
    )
    parser.set_defaults(default_timeout=default_timeout)
    parser.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if --out differs"
    )
    parser.add_argument(
        "pytest_args", nargs="*", help="after --: extra pytest arguments (Job provider)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        target = _target(args)
    except ConfigError as exc:
        print(f"rollout render {args.render_what}: {exc}", file=sys.stderr)
        return 2
    argv = command(args, target)
    if args.render_what == "flagger":
        doc = flagger_webhooks(target)
        note = "Paste the webhooks list under spec.analysis of your Flagger Canary."
    elif args.provider == "job":
        doc = argo_job(target)
        note = "A Job cannot report Inconclusive: HOLD (exit 1) fails the analysis and aborts."
    else:
        doc = argo_web(target)
        note = "GO succeeds, ABORT fails, HOLD is Inconclusive: the rollout pauses."
    text = render_text(doc, argv, note)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    current = args.out.read_text(encoding="utf-8") if args.out.is_file() else None
    if args.check:
        if current != text:
            # --out goes before a `--`, after which everything is a pytest argument.
            end = argv.index("--") if "--" in argv else len(argv)
            rerun = [*argv[:end], "--out", args.out.as_posix(), *argv[end:]]
            print(
                f"{args.out}: differs from a fresh render; run: rollout {' '.join(rerun)}",
                file=sys.stderr,
            )
            return 1
        return 0
    if current != text:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    print(args.out)
    return 0


def command(args: argparse.Namespace, t: Target) -> list[str]:
    """The render command that gives this output (options at their default left out)."""
    argv = ["render", args.render_what]
    if args.config is not None:
        argv += ["--config", args.config.as_posix()]
    argv += ["--phase", t.phase]
    if t.url:
        argv += ["--url", t.url]
    if t.image:
        argv += ["--provider", "job", "--image", t.image]
    if args.timeout != args.default_timeout:
        argv += ["--timeout", args.timeout]
    if t.count != 1:
        argv += ["--count", str(t.count), "--interval", args.interval]
    return argv + (["--", *t.pytest_args] if t.pytest_args else [])


def _target(args: argparse.Namespace) -> Target:
    path = args.config or find_config(Path.cwd())
    if path is None:
        raise ConfigError("no rollout.toml here; pass --config PATH")
    config = load_config(path)
    if args.phase not in config.phases:
        raise ConfigError(
            f"{config.source}: --phase {args.phase!r} is not a phase of [phases]; "
            f"choose one of {', '.join(config.phases)}"
        )
    job = args.render_what == "argo" and args.provider == "job"
    url = args.url.rstrip("/")
    if not job:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
            raise ConfigError(
                f"--url {args.url!r} is not rollout serve's base URL; give "
                "http(s)://HOST:PORT with no path, e.g. http://pytest-rollout.NS.svc:8080"
            )
    if args.pytest_args and not job:
        raise ConfigError(
            "extra pytest arguments after -- only apply to --provider job; "
            "give them to `rollout serve` instead"
        )
    if job and not args.image:
        raise ConfigError("--provider job needs --image (the image with the gates, see Dockerfile)")
    count = getattr(args, "count", 1)
    if count < 1:
        raise ConfigError(f"--count {count} must be at least 1")
    return Target(
        phase=args.phase,
        url=url,
        timeout_s=_seconds("--timeout", args.timeout),
        count=count,
        interval_s=_seconds("--interval", getattr(args, "interval", "10m")),
        image=args.image if job else "",
        pytest_args=tuple(args.pytest_args),
    )


def _seconds(option: str, text: str) -> int:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{option} {text!r}: {exc}; use e.g. 30s or 10m") from None
    if seconds < 1 or seconds != int(seconds):
        raise ConfigError(f"{option} {text!r} must be a whole number of seconds, at least 1s")
    return int(seconds)
