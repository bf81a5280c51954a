"""Screenshots of real audit reports for the docs: run the example scenarios, shoot with Chromium.

    python scripts/screenshot_report.py                 # all three scenarios
    python scripts/screenshot_report.py regression      # just one

Each scenario runs examples/run_scenario.py (a real, backfilled Prometheus; needs Debian's
`prometheus`), then headless Chromium (Debian's `chromium`) renders
out/examples/<scenario>/report.html into docs/images/report-<scenario>.png. Re-runnable: it
overwrites the images.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {"healthy": 0, "regression": 10, "stale": 1}  # expected exit: GO, ABORT, HOLD
IMAGES = ROOT / "docs" / "images"
WIDTH, HEIGHT = 1400, 1500
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def run_scenario(name: str) -> Path:
    command = [sys.executable, str(ROOT / "examples" / "run_scenario.py"), name]
    status = subprocess.call(command, cwd=ROOT)
    if status != SCENARIOS[name]:
        print(
            f"warning: scenario {name} exited {status}, expected {SCENARIOS[name]}", file=sys.stderr
        )
    report = ROOT / "out" / "examples" / name / "report.html"
    if not report.exists():
        raise SystemExit(f"{name}: no report at {report}")
    return report


def screenshot(report: Path, image: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Debian's chromium is not installed: apt-get install chromium")
    image.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rollout-chromium-") as profile:
        # ?collapsed= opens every row, so passed gates show their plots and queries too.
        subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{HEIGHT}",
                "--virtual-time-budget=5000",
                f"--screenshot={image}",
                report.as_uri() + "?collapsed=",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"wrote {image.relative_to(ROOT)}")


def main(argv: list[str]) -> int:
    names = argv or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"usage: screenshot_report.py [{'|'.join(SCENARIOS)} ...]", file=sys.stderr)
        return 2
    for name in names:
        screenshot(run_scenario(name), IMAGES / f"report-{name}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
