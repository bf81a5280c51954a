"""``rollout campaign report``: the campaign page, and a loud non-zero exit when anything fails.

Exit 0 when every decision record's digest and the audit chain verified (or this version has no
audit chain), 1 when anything did not verify: the page is written anyway, failures in red.
2 when the page itself cannot be written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pytest_rollout.files import write_text_atomically

EXIT_OK, EXIT_NOT_VERIFIED, EXIT_CANNOT_WRITE = 0, 1, 2


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "campaign",
        help="the whole rollout on one page (rollout campaign report)",
        description="Build one self-contained HTML page for a rollout campaign from its flag "
        "audit log, decision records and watch timelines. Exit 0 when every record's digest "
        "and the audit log's hash chain verify, 1 when any does not (the page is still written, "
        "the failure marked in red), 2 when the page cannot be written.",
    )
    actions = parser.add_subparsers(dest="campaign_command", metavar="ACTION", required=True)
    report = actions.add_parser(
        "report",
        help="write the campaign page",
        description="Write the campaign page: timeline, per-phase summaries, report links and "
        "the post-rollout analysis.",
    )
    report.add_argument(
        "--audit-log", required=True, type=Path, metavar="PATH", help="the flag audit log (JSONL)"
    )
    report.add_argument(
        "--records",
        required=True,
        type=Path,
        metavar="DIR",
        help="directory of decision records (*.json) and watch outputs (timeline.jsonl)",
    )
    report.add_argument(
        "--reports",
        type=Path,
        metavar="DIR",
        help="directory of the phases' HTML reports (<record name>.html); default: beside "
        "each record",
    )
    report.add_argument(
        "--out", required=True, type=Path, metavar="campaign.html", help="the page to write"
    )


def run(args: argparse.Namespace) -> int:
    from pytest_rollout.campaign.build import build

    problems, text = build(args.audit_log, args.records, args.reports, args.out)
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(args.out, text)
    except OSError as exc:
        print(
            f"rollout campaign report: cannot write --out {args.out}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_CANNOT_WRITE
    for problem in problems:
        print(f"rollout campaign report: NOT VERIFIED {problem}", file=sys.stderr)
    if problems:
        print(
            f"rollout campaign report: {len(problems)} failure(s), marked in red in {args.out}",
            file=sys.stderr,
        )
        return EXIT_NOT_VERIFIED
    print(f"wrote {args.out} (every record and the audit log verified)")
    return EXIT_OK
