"""HTML fragments of the audit report. Every value passes through ``Renderer.esc`` (redact, escape).

Nothing from outside (label values, metric names, reasons, config strings, queries, flag values)
reaches the page unescaped: pytest-html inserts cells and extras with ``innerHTML``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_rollout.redact import Redactor
from pytest_rollout.report import words

OUTCOME_LABELS = {
    "pass": "PASS ✓",
    "fail": "FAIL ✗",
    "inconclusive": "INCONCLUSIVE ?",
    "error": "ERROR !",
}
KIND_LABELS = {"criterion": "criterion", "abort": "abort trigger"}

# Columns added after pytest-html's own: (data-column-type, title, sortable).
COLUMNS = (
    ("rolloutKind", "Kind", True),
    ("rolloutOutcome", "Outcome", True),
    ("rolloutMetric", "Metric", False),
    ("rolloutObserved", "Observed vs threshold", False),
    ("rolloutN", "n per group", False),
    ("rolloutInterval", "Interval", False),
    ("rolloutP", "p-value", False),
)

STYLE = """
body { display: flex; flex-direction: column; }
#environment-header, #environment { order: 1; }
footer { order: 2; }
.rollout-banner { border: 3px solid #999; border-radius: 6px; padding: 10px 14px; margin: 0 0 14px;
  color: #111; background: #fafafa; }
.rollout-banner.rollout-GO { border-color: #1a7f37; background: #eef8f0; }
.rollout-banner.rollout-HOLD { border-color: #b26b00; background: #fff6e5; }
.rollout-banner.rollout-ABORT { border-color: #c62828; background: #fdecea; }
.rollout-headline { font-size: 20px; margin: 0 0 8px; }
.rollout-verdict { font-weight: bold; padding: 2px 10px; border-radius: 4px; color: #fff; }
.rollout-GO .rollout-verdict { background: #1a7f37; }
.rollout-HOLD .rollout-verdict { background: #b26b00; }
.rollout-ABORT .rollout-verdict { background: #c62828; }
.rollout-reason { font-size: 14px; margin: 0 0 8px; }
.rollout-context { border-collapse: collapse; font-size: 12px; color: #111; }
.rollout-context th { text-align: left; padding: 3px 10px 3px 0; vertical-align: top;
  white-space: nowrap; }
.rollout-context td { padding: 3px 0; }
.rollout-context code, .rollout-gate code { background: #eee; padding: 1px 4px;
  word-break: break-all; }
.rollout-context ul { margin: 0; padding-left: 18px; }
#results-table td[class*="col-rollout"] { color: #111; }
#results-table td.col-rolloutMetric { overflow-wrap: anywhere; min-width: 120px; }
#results-table td.col-testId { overflow-wrap: anywhere; }
td.rollout-outcome { font-weight: bold; white-space: nowrap; }
td.rollout-pass { color: #1a7f37; }
td.rollout-fail { color: #fff; background: #c62828; }
td.rollout-error { color: #fff; background: #6f42c1; }
td.rollout-inconclusive { color: #5c3b00; background: repeating-linear-gradient(45deg,
  #ffd27a, #ffd27a 6px, #ffe7b3 6px, #ffe7b3 12px); }
td.rollout-abort { font-weight: bold; color: #c62828; }
.rollout-gate { color: #111; }
.rollout-gate h4 { margin: 4px 0; }
.rollout-words { font-size: 13px; max-width: 900px; }
.rollout-gate img { border: 1px solid #ddd; max-width: 100%; }
.rollout-queries li { margin: 2px 0; }
"""


def header_cells() -> list[str]:
    out = []
    for column, title, sortable in COLUMNS:
        cls = ' class="sortable"' if sortable else ""
        out.append(f'<th{cls} data-column-type="{column}">{title}</th>')
    return out


@dataclass(frozen=True)
class BannerView:
    """What the decision banner shows (plain values; :meth:`Renderer.banner` escapes them)."""

    phase: str
    decision: str
    reason: str
    environment: str | None
    evaluated_at: str
    window: Mapping[str, str]
    window_length: str
    command: str
    commit: str
    operator: str
    ci: str | None
    prometheus_url: str | None
    flags_before: Mapping[str, Any]
    flags_after: Mapping[str, Any]
    actions: Sequence[Mapping[str, Any]]
    digest: str
    record_path: str | None
    counts: Mapping[str, int] = field(default_factory=dict)


class Renderer:
    """Builds the report's HTML; every value goes through :meth:`esc`."""

    def __init__(self, redactor: Redactor) -> None:
        self.redact = redactor

    def esc(self, value: Any) -> str:
        """Redact credentials, then escape for text and attribute context."""
        return html.escape(self.redact("" if value is None else str(value)), quote=True)

    def row_cells(self, result: Mapping[str, Any] | None) -> list[str]:
        """The gate's cells; one line each (pytest-html reads sortable values with a regex)."""
        if result is None:
            return [f'<td class="col-{column}">{words.NONE}</td>' for column, _, _ in COLUMNS]
        record: Mapping[str, Any] = result.get("record") or {}
        kind = str(result.get("kind", ""))
        outcome = str(result.get("outcome", ""))
        kind_class = " rollout-abort" if kind == "abort" else ""
        e = self.esc
        texts = {
            "rolloutMetric": record.get("metric") or words.NONE,
            "rolloutObserved": words.observed_vs_threshold(record),
            "rolloutN": words.n_text(record),
            "rolloutInterval": words.interval_text(record),
            "rolloutP": words.p_value_text(record),
        }
        cells = [
            f'<td class="col-rolloutKind{kind_class}">{e(KIND_LABELS.get(kind, kind))}</td>',
            f'<td class="col-rolloutOutcome rollout-outcome rollout-{e(outcome)}" '
            f'title="{e(result.get("reason", ""))}">{e(OUTCOME_LABELS.get(outcome, outcome))}</td>',
        ]
        cells += [
            f'<td class="col-{column}">{self.esc(texts[column])}</td>'
            for column, _, _ in COLUMNS[2:]
        ]
        return [cell.replace("\n", " ") for cell in cells]

    def gate_extra(
        self, result: Mapping[str, Any], plot_png: str | None, plot_note: str | None = None
    ) -> str:
        """The per-gate details: statistics in words, the plot, the queries as sent."""
        record: Mapping[str, Any] = result.get("record") or {}
        metric = record.get("metric") or result.get("nodeid") or "gate"
        sentences = words.statistics_in_words(
            record, str(result.get("outcome", "")), str(result.get("reason", ""))
        )
        parts = [
            f'<div class="rollout-gate"><h4>{self.esc(metric)}</h4>',
            f'<p class="rollout-words">{self.esc(sentences)}</p>',
        ]
        if plot_png:
            alt = f"{metric}: control and treatment over the evaluation window, threshold dashed"
            parts.append(
                f'<img class="rollout-plot" alt="{self.esc(alt)}" '
                f'src="data:image/png;base64,{plot_png}">'
            )
        elif plot_note:
            note = self.esc(plot_note)
            parts.append(f'<p class="rollout-no-series"><em>no plot</em>: {note}</p>')
        else:
            parts.append(
                '<p class="rollout-no-series"><em>no series recorded</em> for a plot '
                "(the gate did not fill <code>gate.series</code>)</p>"
            )
        parts.append(self._queries(record.get("queries") or []))
        parts.append("</div>")
        return "".join(parts)

    def _queries(self, queries: Sequence[Any]) -> str:
        if not queries:
            return '<p class="rollout-queries"><em>no queries recorded</em></p>'
        items = []
        for query in queries:
            if not isinstance(query, Mapping):
                items.append(f"<li><code>{self.esc(query)}</code></li>")
                continue
            when = f"range {query['range']}" if query.get("range") else f"at {query.get('at', '?')}"
            detail = f"{when}; {query.get('duration_s', '?')} s; {query.get('summary', '')}"
            items.append(
                f"<li><code>{self.esc(query.get('query', ''))}</code> "
                f'<span class="rollout-query-detail">({self.esc(detail)})</span></li>'
            )
        return (
            f'<details class="rollout-queries" open><summary>Queries as sent ({len(queries)})'
            f"</summary><ol>{''.join(items)}</ol></details>"
        )

    def banner(self, view: BannerView) -> str:
        e = self.esc
        decision = view.decision if view.decision in ("GO", "HOLD", "ABORT") else "HOLD"
        counts = ", ".join(f"{n} {o}" for o, n in sorted(view.counts.items())) or "no gates"
        record = f"<code>{self.esc(view.digest)}</code>"
        if view.record_path:
            record += (
                f" in <code>{self.esc(view.record_path)}</code> — check it with "
                f"<code>rollout verify {self.esc(view.record_path)}</code>"
            )
        rows = [
            ("Environment", self.esc(view.environment or "(none)")),
            ("Evaluated at", f"<code>{self.esc(view.evaluated_at)}</code>"),
            (
                "Window",
                f"{e(view.window.get('start', '?'))} → {e(view.window.get('end', '?'))}"
                f" ({e(view.window_length)})",
            ),
            ("Gates", self.esc(counts)),
            ("Reproduce", f'<code class="rollout-command">{self.esc(view.command)}</code>'),
            ("Gates commit", f"<code>{self.esc(view.commit)}</code>"),
            ("Operator", e(view.operator) + (f" — CI: {e(view.ci)}" if view.ci else " (not CI)")),
            ("Prometheus", self.esc(view.prometheus_url or "(not configured)")),
            ("Flags before", self._mapping(view.flags_before)),
            ("Flags after", self._mapping(view.flags_after)),
            ("Actions", self._actions(view.actions)),
            ("Decision record", record),
        ]
        body = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
        return (
            f"<style>{STYLE}</style>"
            f'<section id="rollout-decision" class="rollout-banner rollout-{decision}">'
            f'<div class="rollout-headline">Rollout <span class="rollout-phase">{e(view.phase)}'
            f'</span>: <span class="rollout-verdict">{decision}</span></div>'
            f'<p class="rollout-reason">{e(view.reason)}</p>'
            f'<table class="rollout-context">{body}</table></section>'
        )

    def _mapping(self, values: Mapping[str, Any]) -> str:
        if not values:
            return "<em>not recorded</em>"
        e = self.esc
        items = "".join(
            f"<li><code>{e(key)}</code> = <code>{e(_json(value))}</code></li>"
            for key, value in sorted(values.items())
        )
        return f"<ul>{items}</ul>"

    def _actions(self, actions: Sequence[Mapping[str, Any]]) -> str:
        if not actions:
            return "none"
        items = []
        for action in actions:
            text = (
                f"{action.get('action', '?')}: {action.get('result', '?')} at "
                f"{action.get('at', '?')}"
            )
            message = action.get("message")
            items.append(f"<li>{self.esc(text)}{' — ' + self.esc(message) if message else ''}</li>")
        return f"<ul>{''.join(items)}</ul>"


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
