"""Screenshot of a campaign page for docs/report.md: docs/images/campaign.png.

    python scripts/screenshot_campaign.py

Builds the test suite's demo campaign (tests/campaign/helpers.py: a hash-chained audit log,
decision records written by the plugin's own record builder, a watch look), runs
`rollout campaign report` on it and renders the page in headless Chromium (Debian's `chromium`).
Re-runnable: it overwrites the image.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.screenshot_report import CHROMIUM_FLAGS  # noqa: E402
from tests.campaign.helpers import make_campaign  # noqa: E402

IMAGE = ROOT / "docs" / "images" / "campaign.png"
WIDTH, HEIGHT = 1300, 2200


def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Debian's chromium is not installed: apt-get install chromium")
    with tempfile.TemporaryDirectory(prefix="rollout-campaign-") as tmp:
        paths = make_campaign(Path(tmp))
        page = Path(tmp) / "campaign.html"
        command = [
            sys.executable,
            "-m",
            "pytest_rollout",
            "campaign",
            "report",
            "--audit-log",
            str(paths["log"]),
            "--records",
            str(paths["records"]),
            "--out",
            str(page),
        ]
        status = subprocess.call(command, cwd=ROOT)
        if status != 0:
            raise SystemExit(f"rollout campaign report exited {status}")
        subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={Path(tmp) / 'profile'}",
                f"--window-size={WIDTH},{HEIGHT}",
                "--virtual-time-budget=5000",
                f"--screenshot={IMAGE}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
    print(f"wrote {IMAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
