"""The watch timeline: its per-gate entries, reading it back, and its chart in the report.

``rollout watch`` appends one JSON line per look to ``<out>/timeline.jsonl`` (docs/watch.md) and
points each gate run at it with ``ROLLOUT_TIMELINE``; the run's HTML report then shows, per A/B
gate, the delta's interval over the looks against the margin and abort margin, with the flag
changes marked. The current look comes from the run's own record (it is not in the file yet).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_rollout.instants import parse_instant

TIMELINE_ENV = "ROLLOUT_TIMELINE"
MARGIN_COLOUR, ABORT_COLOUR, FLAG_COLOUR = "#e6a100", "#c62828", "#6a1b9a"
INTERVAL_COLOURS = {"criterion": "#4c72b0", "abort": "#dd8452"}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def gate_entries(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per gate of a decision record: verdict, interval, margins, n and ETA (timeline format)."""
    out: list[dict[str, Any]] = []
    for gate in record.get("gates") or []:
        if not isinstance(gate, Mapping):
            continue
        ci = gate.get("ci")
        lower, upper = (ci[0], ci[1]) if isinstance(ci, Sequence) and len(ci) == 2 else (None, None)
        threshold = _number(gate.get("threshold"))
        abort = gate.get("kind") == "abort"
        nodeid = str(gate.get("nodeid", ""))
        out.append(
            {
                "nodeid": nodeid,
                "name": nodeid.rsplit("::", 1)[-1],
                "kind": "abort" if abort else "criterion",
                "metric": gate.get("metric"),
                "verdict": str(gate.get("outcome", "unknown")).upper(),
                "lower": _number(lower),
                "upper": _number(upper),
                "estimate": _number(gate.get("observed")),
                "margin": None if abort else threshold,
                "abort_margin": threshold if abort else None,
                "n": gate.get("n") if isinstance(gate.get("n"), int) else None,
                "eta": gate.get("eta") if isinstance(gate.get("eta"), str) else None,
                "unit": str(gate.get("unit") or ""),
            }
        )
    return out


def record_since(record: Mapping[str, Any]) -> str | None:
    """The phase start the record's A/B gates counted from (None when none did)."""
    for gate in record.get("gates") or []:
        evidence = gate.get("evidence") if isinstance(gate, Mapping) else None
        if isinstance(evidence, Mapping) and isinstance(evidence.get("since"), str):
            return str(evidence["since"])
    return None


def read_timeline(path: Path) -> list[dict[str, Any]]:
    """The looks in the file; a line that is not a JSON object (a torn write) is left out."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    looks: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            looks.append(entry)
    return looks


def current_look(
    record: Mapping[str, Any], previous: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """The look being reported, in the timeline format, from its own record."""
    numbers = [n for e in previous if isinstance(n := e.get("look"), int)]
    return {
        "look": max(numbers, default=0) + 1,
        "at": record.get("evaluated_at"),
        "decision": record.get("decision"),
        "gates": gate_entries(record),
        "flag_changes": [],
    }


def _instant(value: Any) -> float | None:
    try:
        return parse_instant(str(value)) if value else None
    except ValueError:
        return None


def ab_series(looks: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """metric -> its A/B gates' points over the looks (gates with an interval only)."""
    by_metric: dict[str, list[dict[str, Any]]] = {}
    for look in looks:
        at = _instant(look.get("at"))
        if at is None:
            continue
        for gate in look.get("gates") or []:
            if not isinstance(gate, Mapping):
                continue
            lower, upper = _number(gate.get("lower")), _number(gate.get("upper"))
            if lower is None and upper is None:
                continue
            key = str(gate.get("metric") or gate.get("name") or gate.get("nodeid"))
            by_metric.setdefault(key, []).append({**gate, "at": at, "look": look.get("look")})
    return by_metric


def flag_change_times(looks: Sequence[Mapping[str, Any]]) -> list[tuple[float, str]]:
    """(instant, "flag before -> after") of every flag change the looks recorded."""
    marks: list[tuple[float, str]] = []
    for look in looks:
        for change in look.get("flag_changes") or []:
            if not isinstance(change, Mapping):
                continue
            at = _instant(change.get("time"))
            if at is not None:
                label = f"{change.get('flag')} {change.get('before')!s}→{change.get('after')!s}"
                marks.append((at, label))
    return sorted(set(marks))


def chart_png(
    metric: str, points: Sequence[Mapping[str, Any]], flags: Sequence[tuple[float, str]]
) -> str:
    """Base64 PNG: each gate's interval per look, its margin / abort margin, flag changes."""
    from matplotlib.dates import DateFormatter, date2num
    from matplotlib.figure import Figure

    from pytest_rollout.report.plots import png_base64, unit_scale

    def x(at: float) -> float:
        return float(date2num(datetime.fromtimestamp(at, UTC)))  # type: ignore[no-untyped-call]

    unit = next((str(p.get("unit") or "") for p in points), "")
    factor, shown = unit_scale(unit)
    fig = Figure(figsize=(7.5, 3.2), dpi=100)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.2)
    ax = fig.subplots()
    for kind in sorted({str(p.get("kind")) for p in points}):
        colour = INTERVAL_COLOURS.get(kind, "#333333")
        for p in points:
            lo, hi = _number(p.get("lower")), _number(p.get("upper"))
            if p.get("kind") != kind or lo is None or hi is None:
                continue  # a one-sided interval is drawn by its estimate only
            ax.vlines(x(float(p["at"])), lo * factor, hi * factor, color=colour, linewidth=3)
        ax.plot([], [], color=colour, linewidth=3, label=f"interval ({kind})")
    for key, colour, name in (
        ("margin", MARGIN_COLOUR, "margin"),
        ("abort_margin", ABORT_COLOUR, "abort margin"),
    ):
        for value in sorted({v for p in points if (v := _number(p.get(key))) is not None}):
            ax.axhline(
                value * factor,
                color=colour,
                linestyle="--",
                label=f"{name} {value * factor:+g} {shown}".rstrip(),
            )
    estimates = [
        (x(float(p["at"])), e * factor)
        for p in points
        if (e := _number(p.get("estimate"))) is not None
    ]
    if estimates:
        ax.plot(*zip(*estimates, strict=True), "k.", markersize=4, label="estimate")
    ax.axhline(0.0, color="#999999", linewidth=0.8)
    for at, _label in flags:
        ax.axvline(x(at), color=FLAG_COLOUR, linestyle=":", linewidth=1.2)
    if flags:
        ax.plot([], [], color=FLAG_COLOUR, linestyle=":", label="flag change")
    ax.set_title(metric if len(metric) <= 90 else metric[:89] + "…", fontsize=10, loc="left")
    ax.set_ylabel(f"treatment − control {shown}".rstrip())
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_formatter(DateFormatter("%H:%M:%S", tz=UTC))  # type: ignore[no-untyped-call]
    ax.set_xlabel("look time (UTC)")
    return png_base64(fig)


def timeline_html(looks: Sequence[Mapping[str, Any]], esc: Callable[[Any], str]) -> str:
    """The report's timeline section; ``esc`` escapes every value that came from outside."""
    series = ab_series(looks)
    flags = flag_change_times(looks)
    parts = [
        '<div class="rollout-timeline"><h3>Timeline of the watch</h3>',
        f"<p>{len(looks)} look(s): "
        + esc(", ".join(f"#{e.get('look')} {e.get('decision')}" for e in looks))
        + "</p>",
    ]
    decided = next((e for e in looks if e.get("decision") in ("GO", "ABORT")), None)
    if decided is not None:
        parts.append(
            f"<p>The decision became certain at look #{esc(decided.get('look'))} "
            f"({esc(decided.get('at'))}): {esc(decided.get('decision'))}.</p>"
        )
    if not series:
        parts.append("<p><em>no A/B gate recorded an interval yet</em></p>")
    for metric, points in series.items():
        try:
            png = chart_png(metric, points, flags)
        except ImportError:
            parts.append(
                "<p>chart unavailable: matplotlib is not installed "
                "(pip install 'pytest-rollout[report]')</p>"
            )
            break
        alt = f"{metric}: interval over the looks against the margin and abort margin"
        parts.append(
            f'<h4>{esc(metric)}</h4><img class="rollout-timeline-plot" alt="{esc(alt)}" '
            f'src="data:image/png;base64,{png}">'
        )
    parts.append("</div>")
    return "".join(parts)
