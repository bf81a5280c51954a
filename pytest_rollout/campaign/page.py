"""The campaign page: one self-contained HTML file, no script, every value redacted and escaped.

Names, reasons and flag values come from audit lines and records anyone with write access could
have crafted: each passes through :meth:`Page.esc`, and a Content-Security-Policy forbids
scripts and external resources besides.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from pytest_rollout.campaign.collect import Campaign
from pytest_rollout.campaign.events import Event
from pytest_rollout.campaign.phases import NOT_RECORDED, Figure, PhaseSummary
from pytest_rollout.redact import Redactor
from pytest_rollout.report import words

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; color: #111; margin: 24px auto; max-width: 1200px;
  padding: 0 16px; }
h1 { font-size: 24px; margin: 0 0 8px; } h2 { font-size: 19px; margin: 28px 0 8px;
  border-bottom: 1px solid #ddd; padding-bottom: 4px; } h3 { font-size: 16px; margin: 18px 0 6px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { text-align: left; vertical-align: top; padding: 4px 8px; border-bottom: 1px solid #eee; }
th { background: #f5f5f5; font-weight: 600; white-space: nowrap; }
td { overflow-wrap: anywhere; }
code { background: #f0f0f0; padding: 1px 4px; border-radius: 3px; font-size: 12px; }
.banner { border: 3px solid #1a7f37; background: #eef8f0; border-radius: 6px; padding: 10px 14px; }
.banner.failed { border-color: #c62828; background: #fdecea; }
.bad { color: #fff; background: #c62828; font-weight: bold; }
.bad-text { color: #c62828; font-weight: bold; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  font-weight: 600; white-space: nowrap; }
.badge.ok { background: #1a7f37; color: #fff; } .badge.bad { background: #c62828; }
.badge.na { background: #ddd; color: #333; }
.d-GO { color: #1a7f37; font-weight: bold; } .d-HOLD { color: #b26b00; font-weight: bold; }
.d-ABORT { color: #c62828; font-weight: bold; }
tr.k-rollback td { background: #fff1f0; } tr.k-approval td { background: #f1f6ff; }
tr.failed td { background: #fdecea; }
.muted { color: #666; font-size: 12px; }
.phase { border: 1px solid #ddd; border-radius: 6px; padding: 4px 14px 10px; margin: 12px 0; }
img { max-width: 100%; border: 1px solid #ddd; }
"""
KIND_LABELS = {
    "flag": "flag change",
    "rollback": "rollback",
    "approval": "approval",
    "decision": "decision",
    "look": "watch look",
}


class Page:
    def __init__(self, redactor: Redactor, out: Path) -> None:
        self.redact = redactor
        self.base = out.resolve().parent

    def esc(self, value: Any) -> str:
        """Redact credentials, then escape for text and attribute context."""
        return html.escape(self.redact("" if value is None else str(value)), quote=True)

    def render(
        self,
        campaign: Campaign,
        events: Sequence[Event],
        phases: Sequence[PhaseSummary],
        figures: Sequence[tuple[str, Figure | None, Figure | None]],
        share_png: str | None,
        generated_at: str,
    ) -> str:
        parts = [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            "<title>Rollout campaign report</title>",
            f"<style>{STYLE}</style></head><body>",
            "<h1>Rollout campaign</h1>",
            f'<p class="muted">generated at {self.esc(generated_at)} from '
            f"<code>{self.esc(campaign.audit_log)}</code> and {len(campaign.records)} decision "
            "record(s)</p>",
            self.integrity(campaign),
            self.analysis(figures, share_png),
            '<h2 id="phases">Phases</h2>',
            *(self.phase(p) for p in phases),
            self.timeline(events),
            "</body></html>",
        ]
        return "\n".join(parts) + "\n"

    def integrity(self, campaign: Campaign) -> str:
        failed = bool(campaign.problems)
        verified = sum(1 for r in campaign.records if r.ok)
        chain = campaign.chain
        chain_badge = {"ok": "ok", "broken": "bad"}.get(chain.state, "na")
        chain_word = "verified" if chain.state == "ok" else "BROKEN"
        rows = [
            (
                "Audit chain",
                f'<span class="badge {chain_badge}">{chain_word}</span> {self.esc(chain.message)}',
            ),
            (
                "Decision records",
                f"{verified} of {len(campaign.records)} digest(s) verified"
                + (
                    f' — <span class="bad-text">{len(campaign.records) - verified} NOT VERIFIED'
                    "</span>"
                    if verified < len(campaign.records)
                    else ""
                ),
            ),
        ]
        body = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
        problems = ""
        if failed:
            items = "".join(
                f"<li><code>{self.esc(p.where)}</code>: {self.esc(p.message)}</li>"
                for p in campaign.problems
            )
            problems = (
                '<p class="bad-text">VERIFICATION FAILED: do not trust this history until '
                f'these are explained.</p><ul id="problems">{items}</ul>'
            )
        state = "failed" if failed else "verified"
        return (
            f'<section id="integrity" class="banner {"failed" if failed else ""}" '
            f'data-state="{state}"><table>{body}</table>{problems}</section>'
        )

    def analysis(
        self, figures: Sequence[tuple[str, Figure | None, Figure | None]], share_png: str | None
    ) -> str:
        rows = []
        for label, first, last in figures:
            after = self._figure(last)
            if last is None and first is not None:
                after = "<em>no later look measured it</em>"
            rows.append(
                f"<tr><th>{self.esc(label)}</th><td>{self._figure(first)}</td><td>{after}</td></tr>"
            )
        chart = (
            '<img id="share-chart" alt="treatment share over time, decisions marked" '
            f'src="data:image/png;base64,{share_png}">'
            if share_png
            else f"<p><em>treatment share {NOT_RECORDED}</em>: no cohort flag change in the "
            "audit log</p>"
        )
        return (
            '<h2 id="analysis">Post-rollout analysis</h2>'
            '<p class="muted">Each figure is what a gate measured, with its interval: a '
            "difference (treatment − control, or against the phase 0 baseline) or an absolute "
            "value. Before: the first look that measured it; after: the final look. Only "
            "records whose digest verified count.</p>"
            '<table id="key-figures"><tr><th>figure</th><th>before (first look)</th>'
            f"<th>after (final look)</th></tr>{''.join(rows)}</table>"
            f"<h3>Treatment share over time</h3>{chart}"
        )

    def _figure(self, figure: Figure | None) -> str:
        if figure is None:
            return f"<em>{NOT_RECORDED}</em>"
        gate = figure.gate
        unit = str(gate.get("unit") or "")
        value = words.value_text(gate.get("observed"), unit, signed=words.is_comparison(gate))
        interval = words.interval_text(gate)
        return (
            f"<b>{self.esc(value)}</b> (interval {self.esc(interval)}) "
            f'<span class="muted">{self.esc(figure.phase)} at {self.esc(figure.at)}: '
            f"{self.esc(figure.metric)}</span>"
        )

    def phase(self, summary: PhaseSummary) -> str:
        e = self.esc
        decisions = "".join(
            f'<li><span class="d-{e(r.decision)}">{e(r.decision)}</span> at {e(r.at)} '
            f"{self._badge(r.ok, r.problem)} <code>{e(r.path.name)}</code></li>"
            for r in summary.records
        )
        signoffs = "".join(
            f"<li>{e(a.title)} at {e(a.at)} — {e(a.detail)}</li>" for a in summary.approvals
        )
        rollbacks = "".join(
            f"<li>{e(r.title)} at {e(r.at)} by {e(r.actor)} — {e(r.detail)}</li>"
            for r in summary.rollbacks
        )
        links = "".join(
            f'<li><a href="{self._href(path)}">{e(label)}: {e(path.name)}</a></li>'
            for label, path in summary.reports
        )
        rows = [
            (
                "Started",
                f'{e(summary.started or NOT_RECORDED)} <span class="muted">'
                f"({e(summary.started_from or 'no record or flag change says')})</span>",
            ),
            (
                "Held",
                e(summary.held or NOT_RECORDED)
                + (
                    f" (until the final decision at {e(summary.last_decision_at)})"
                    if summary.held
                    else ""
                ),
            ),
            ("Decisions", f"<ul>{decisions}</ul>" if decisions else "none"),
            ("Rollbacks", f"<ul>{rollbacks}</ul>" if rollbacks else "none"),
            ("Signed off", f"<ul>{signoffs}</ul>" if signoffs else "no approval recorded"),
            ("Reports", f"<ul>{links}</ul>" if links else "no report found"),
        ]
        body = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
        return (
            f'<section class="phase" data-phase="{e(summary.phase)}">'
            f"<h3>{e(summary.phase)}</h3><table>{body}</table>"
            f"{self._deltas(summary)}</section>"
        )

    def _deltas(self, summary: PhaseSummary) -> str:
        gates = summary.key_gates()
        if not gates:
            return ""
        e = self.esc
        final = summary.final
        trust = (
            ""
            if final is None or final.ok
            else (' <span class="bad-text">(digest NOT verified: not trustworthy)</span>')
        )
        rows = "".join(
            f"<tr><td>{e(g.get('metric') or g.get('nodeid'))}</td>"
            f"<td>{e(words.observed_vs_threshold(g))}</td><td>{e(words.interval_text(g))}</td>"
            f"<td>{e(words.n_text(g))}</td><td>{e(g.get('outcome', words.NONE))}</td></tr>"
            for g in gates
        )
        return (
            f"<p><b>Key figures at the final look</b>{trust}</p><table><tr><th>metric</th>"
            "<th>observed vs threshold</th><th>interval</th><th>n</th><th>outcome</th></tr>"
            f"{rows}</table>"
        )

    def timeline(self, events: Iterable[Event]) -> str:
        e = self.esc
        rows = []
        for event in events:
            classes = [f"k-{event.kind}"] + ([] if event.ok else ["failed"])
            title = e(event.title)
            if event.decision:
                title = f'<span class="d-{e(event.decision)}">{title}</span>'
            if not event.ok:
                title = f'<span class="bad-text">{title}</span>'
            rows.append(
                f'<tr class="{" ".join(classes)}"><td>{e(event.at or "?")}</td>'
                f"<td>{e(event.phase)}</td><td>{e(KIND_LABELS.get(event.kind, event.kind))}</td>"
                f'<td>{title}<br><span class="muted">{e(event.detail)}</span></td>'
                f'<td>{e(event.actor)}</td><td class="muted">{e(event.where)}</td></tr>'
            )
        return (
            '<h2 id="timeline">Timeline</h2><table id="events"><tr><th>time</th><th>phase</th>'
            "<th>kind</th><th>what</th><th>who</th><th>source</th></tr>"
            f"{''.join(rows)}</table>"
        )

    def _badge(self, ok: bool, problem: str) -> str:
        if ok:
            return '<span class="badge ok">digest verified</span>'
        return f'<span class="badge bad">digest NOT verified: {self.esc(problem)}</span>'

    def _href(self, path: Path) -> str:
        """A relative link from the page; "./" first so no file name reads as a URL scheme."""
        relative = os.path.relpath(path.resolve(), self.base).replace(os.sep, "/")
        prefix = "" if relative.startswith("../") else "./"
        return self.esc(prefix + "/".join(quote(p) for p in relative.split("/")))
