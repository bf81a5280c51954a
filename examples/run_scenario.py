"""Run the example canary gates against a real Prometheus holding one bundled scenario.

    python examples/run_scenario.py healthy      # GO, exit 0
    python examples/run_scenario.py regression   # ABORT, exit 10
    python examples/run_scenario.py stale        # HOLD, exit 1

Extra arguments go to pytest (e.g. ``-n 2``). The decision record and HTML report land in
``out/examples/<scenario>/``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from examples.scenarios import END, HISTORY_S, SCENARIOS, generate  # noqa: E402
from pytest_rollout.promserver import start_backfilled  # noqa: E402


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in SCENARIOS:
        print(f"usage: run_scenario.py {{{','.join(SCENARIOS)}}} [pytest args...]", file=sys.stderr)
        return 2
    scenario, extra = argv[0], argv[1:]
    out = HERE.parent / "out" / "examples" / scenario
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"rollout-{scenario}-") as tmp:
        print(f"backfilling scenario {scenario!r} into a local Prometheus ...", file=sys.stderr)
        server = start_backfilled(generate(scenario), Path(tmp))
        try:
            command = [
                sys.executable,
                "-m",
                "pytest",
                str(HERE),
                "-m",
                "phase2",
                "-p",
                "no:cacheprovider",
                f"--rollout-prometheus-url={server.url}",
                f"--rollout-at={END}",
                # The canary began when the history does: A/B gates judge the whole phase.
                f"--rollout-since={END - HISTORY_S}",
                f"--rollout-decision-json={out / 'decision.json'}",
                f"--html={out / 'report.html'}",
                "--self-contained-html",
                *extra,
            ]
            print("$ " + " ".join(command), file=sys.stderr)
            return subprocess.call(command, cwd=HERE.parent)
        finally:
            server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
