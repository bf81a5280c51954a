"""``rollout serve --gates DIR [--host H] [--port P] [--max-parallel N] [-- PYTEST_ARGS...]``."""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from pytest_rollout.config import ConfigError, RolloutConfig, find_config, load_config
from pytest_rollout.settings import (
    OPT_CONFIG,
    OPT_ENV,
    OPT_FLAGS,
    OPT_PROMETHEUS_URL,
    Settings,
    SettingsError,
    resolve_settings,
)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve gate decisions over HTTP (Argo Rollouts, Flagger, Alertmanager)",
        description="Serve the gates over HTTP: POST /v1/phases/PHASE/evaluate runs the "
        "phase's gates on a warm worker and answers GO, HOLD or ABORT. Everything after `--` "
        "goes to every gate run (e.g. -- --rollout-env staging). "
        "ROLLOUT_SERVE_TOKEN, when set, is the bearer token every POST must carry. "
        "See docs/serve.md.",
    )
    parser.add_argument("--gates", required=True, type=Path, help="the gates folder (tests)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port (8080)")
    parser.add_argument("--max-parallel", type=_positive, default=2, help="gate runs at once (2)")
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where runs, reports and the latest decisions live (default: a new temp folder)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds before a gate run is killed and answered HOLD (300)",
    )
    parser.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module the gates import, imported once in the warm worker (repeatable)",
    )
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- PYTEST_ARGS...")


def split_pytest_args(args: Sequence[str]) -> list[str]:
    rest = list(args)
    return rest[1:] if rest[:1] == ["--"] else rest


def resolve(gates: Path, pytest_args: Sequence[str]) -> tuple[RolloutConfig, Settings]:
    """rollout.toml and the settings, found the way the plugin finds them for the same run."""
    known = argparse.ArgumentParser(add_help=False)
    for option in (OPT_CONFIG, OPT_ENV, OPT_PROMETHEUS_URL, OPT_FLAGS):
        known.add_argument(option)
    given, _ = known.parse_known_args(list(pytest_args))
    path = Path(given.rollout_config) if given.rollout_config else None
    config = load_config(path or find_config(Path.cwd(), [str(gates)]))
    cli = {
        "environment": given.rollout_env,
        "prometheus_url": given.rollout_prometheus_url,
        "flags": given.rollout_flags,
    }
    return config, resolve_settings(cli, config=config)


def run(args: argparse.Namespace) -> int:
    # Imported here: `rollout --help` must not pay for Starlette, uvicorn or multiprocessing.
    import uvicorn

    from pytest_rollout.serve.app import build_app, take_token
    from pytest_rollout.serve.evaluate import Evaluator, ServeState
    from pytest_rollout.serve.metrics import ServeMetrics
    from pytest_rollout.serve.worker import WarmWorker

    gates = Path(args.gates).resolve()
    if not gates.exists():
        print(f"rollout serve: --gates {args.gates}: no such folder", file=sys.stderr)
        return 2
    pytest_args = split_pytest_args(args.pytest_args)
    try:
        config, settings = resolve(gates, pytest_args)
    except (ConfigError, SettingsError) as exc:
        print(f"rollout serve: {exc}", file=sys.stderr)
        return 2
    state_dir = args.state_dir or Path(tempfile.mkdtemp(prefix="rollout-serve-"))
    state_dir.mkdir(parents=True, exist_ok=True)
    token = take_token()  # before the worker starts: gate runs never see it
    state = ServeState(
        gates=gates,
        pytest_args=pytest_args,
        state_dir=state_dir.resolve(),
        config=config,
        settings=settings,
        metrics=ServeMetrics(),
        timeout_s=args.timeout,
    )
    if token is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"rollout serve: WARNING: --host {args.host} without ROLLOUT_SERVE_TOKEN: anyone who "
            "can reach the port can trigger gate runs; set ROLLOUT_SERVE_TOKEN",
            file=sys.stderr,
        )
    worker = WarmWorker(extra_preload=args.preload)
    worker.start(state.state_dir / "worker")
    app = build_app(state, Evaluator(state, worker, args.max_parallel), token)
    print(
        f"rollout serve: gates {gates}, config {config.source}, state {state.state_dir}, "
        f"http://{args.host}:{args.port}" + (" (bearer token required)" if token else ""),
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0
