"""Collect, verify and render: the campaign page's text and the failures that mark it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pytest_rollout.campaign.charts import share_png
from pytest_rollout.campaign.collect import collect
from pytest_rollout.campaign.events import all_events, treatment_share
from pytest_rollout.campaign.page import Page
from pytest_rollout.campaign.phases import key_figures, summaries
from pytest_rollout.instants import rfc3339
from pytest_rollout.redact import Redactor


def build(audit_log: Path, records: Path, reports: Path | None, out: Path) -> tuple[list[str], str]:
    """(every failure as "where: what", the page's HTML)."""
    campaign = collect(audit_log, records, reports)
    events = all_events(campaign)
    decisions = [e for e in events if e.kind == "decision"]
    chart = share_png(treatment_share(campaign), decisions)
    # Credentials in the environment (tokens) and in URLs never reach the page.
    page = Page(Redactor.build(environ=os.environ), out)
    text = page.render(
        campaign,
        events,
        summaries(campaign, events),
        key_figures(campaign),
        chart,
        rfc3339(time.time()),
    )
    return [f"{p.where}: {p.message}" for p in campaign.problems], text
