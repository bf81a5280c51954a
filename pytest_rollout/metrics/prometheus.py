"""Prometheus HTTP API source (any PromQL-compatible backend), fail-closed.

Every query is evaluated at the run's pinned instant and recorded on the gate that sent it.
Anything that keeps a gate from knowing the truth -- backend down, HTTP error, garbage,
empty result, NaN, +-Inf, stale series -- ends the gate *inconclusive*, never pass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pytest_rollout.durations import format_duration, parse_duration
from pytest_rollout.gate import GateRecord, QueryRecord
from pytest_rollout.instants import rfc3339
from pytest_rollout.metrics.evaluation_clock import NO_CACHE, EvaluationClock
from pytest_rollout.metrics.settings import (
    ENV_CA_BUNDLE,
    ENV_PASSWORD,
    ENV_TOKEN,
    ENV_USER,
    PromSettings,
    validate_prometheus_url,
)
from pytest_rollout.metrics.transport import BackendError, PromApi
from pytest_rollout.outcomes import inconclusive

__all__ = [
    "ENV_CA_BUNDLE",
    "ENV_PASSWORD",
    "ENV_TOKEN",
    "ENV_USER",
    "BackendError",
    "PromQuery",
    "PromSettings",
    "PrometheusSource",
    "RangeSeries",
    "Sample",
    "validate_prometheus_url",
]


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class RangeSeries:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix seconds, value)


class PrometheusSource:
    """One client per run, pinned to one evaluation instant, with one failure budget."""

    def __init__(self, settings: PromSettings, at: float) -> None:
        self.settings = settings
        self.at = at
        self._api = PromApi(settings)
        self._clock = EvaluationClock(self._api, at, settings.display_url)
        # The instant is pinned, so a query asked again (a criterion and its abort trigger over
        # the same histogram, a plot per gate) has one answer: ask the backend once. Every gate
        # still records the query it asked. Failures are not kept: they raise.
        self._answers: dict[tuple[str, str], Any] = {}

    def instant(self, query: str) -> tuple[Any, float]:
        """Raw ``data.result`` of an instant query at the pinned instant, and seconds taken
        (0 when this run already had the answer)."""
        self._clock.check_instant()
        key = ("instant", query)
        if key in self._answers:
            return self._answers[key], 0.0
        raw, took = self._api.result("/api/v1/query", {"query": query, "time": self.at, **NO_CACHE})
        self._answers[key] = raw
        return raw, took

    def range(self, query: str, start: float, end: float, step_s: float) -> tuple[Any, float]:
        span = {
            "start": round(start),
            "end": round(end),
            "step": format_duration(step_s),
            **NO_CACHE,
        }
        self._clock.check_instant()
        self._clock.check_range(span)
        key = ("range", f"{query}|{span['start']}|{span['end']}|{span['step']}")
        if key in self._answers:
            return self._answers[key], 0.0
        raw, took = self._api.result("/api/v1/query_range", {"query": query, **span})
        self._answers[key] = raw
        return raw, took


# PromQL words that look like metric names but are not.
_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
    "atan2",
    "start",
    "end",
}
_TOKEN = re.compile(
    r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|\[[^\]]*\]|\{[^}]*\}|[A-Za-z_:][A-Za-z0-9_:]*|\S'
)


def series_selectors(query: str) -> list[str]:
    """The vector selectors in a PromQL expression (``name{labels}``), for the staleness guard."""
    tokens = _TOKEN.findall(query)
    selectors: list[str] = []
    skip_parens = False
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
        if skip_parens:
            if tok == ")":
                skip_parens = False
        elif tok.lower() in ("by", "without", "on", "ignoring", "group_left", "group_right"):
            skip_parens = nxt == "("
        elif re.fullmatch(r"[A-Za-z_:][A-Za-z0-9_:]*", tok) and tok.lower() not in _KEYWORDS:
            if nxt == "(" or nxt.lower() in ("by", "without"):
                pass  # a function or an aggregation
            elif nxt.startswith("{"):
                selectors.append(tok + nxt)
                i += 1
            else:
                selectors.append(tok)
        elif tok.startswith("{"):
            selectors.append(tok)  # a bare {__name__=...} selector (named ones are consumed above)
        i += 1
    return list(dict.fromkeys(selectors))


def query_ranges(query: str) -> list[float]:
    """Seconds of every ``[range]`` and ``[range:step]`` in a PromQL expression."""
    out = []
    for match in re.finditer(r"\[\s*([0-9][0-9a-z]*)\s*(?::[^\]]*)?\]", query):
        try:
            out.append(parse_duration(match.group(1)))
        except ValueError:
            continue
    return out


class PromQuery:
    """The ``prom`` fixture: queries for one gate, recorded on it, fail-closed."""

    def __init__(self, source: PrometheusSource, gate: GateRecord) -> None:
        self.source = source
        self.gate = gate

    @property
    def at(self) -> float:
        return self.source.at

    def vector(
        self,
        query: str,
        *,
        check_staleness: bool = True,
        allow_empty: bool = False,
        allow_nan: bool = False,
    ) -> list[Sample]:
        """All series of an instant query; backend failures -> inconclusive.

        An empty result, or a NaN/+-Inf sample, ends the gate inconclusive: ``assert not
        any(s.value > limit ...)`` would otherwise pass on no evidence. A gate that handles
        those itself passes ``allow_empty=True`` (``[]`` comes back) or ``allow_nan=True``.
        """
        raw = self._instant(query)
        if isinstance(raw, list) and len(raw) == 2 and not isinstance(raw[0], dict):
            samples = [Sample({}, _to_float(raw[1]))]  # scalar result
        else:
            samples = [Sample(dict(s.get("metric", {})), _to_float(s["value"][1])) for s in raw]
        if not samples and not allow_empty:
            inconclusive(_no_data(query, "allow_empty=True"))
        bad = [s for s in samples if not math.isfinite(s.value)]
        if bad and not allow_nan:
            inconclusive(_not_finite(query, len(bad), len(samples), bad[0].labels))
        if check_staleness and samples:
            self.check_fresh(query)
        return samples

    def value(self, query: str) -> float:
        """Exactly one finite number, or the gate ends inconclusive saying why."""
        samples = self.vector(query, allow_empty=True, allow_nan=True)
        if not samples:
            inconclusive(_no_data(query))
        if len(samples) > 1:
            shown = ", ".join(_labels(s.labels) for s in samples[:3])
            inconclusive(
                f"query returned {len(samples)} series, expected one ({shown}); "
                f"aggregate it (e.g. sum(...)): {query}"
            )
        number = samples[0].value
        if not math.isfinite(number):
            inconclusive(
                f"query returned {number} (NaN or infinite: usually a 0/0 with no "
                f"traffic in the window): {query}"
            )
        return number

    def range(
        self,
        query: str,
        *,
        start: float | None = None,
        end: float | None = None,
        step_s: float = 60.0,
        window_s: float = 3600.0,
        allow_empty: bool = False,
        allow_nan: bool = False,
    ) -> list[RangeSeries]:
        """A range query ending at the pinned instant (default: the last ``window_s``).

        No series, or a NaN/+-Inf point, ends the gate inconclusive unless the gate passes
        ``allow_empty=True`` / ``allow_nan=True`` and handles them itself.
        """
        end = self.at if end is None else end
        start = end - window_s if start is None else start
        # Prometheus refuses more than 11,000 points per series; widen the step instead.
        step_s = max(step_s, (end - start) / 10_000)
        span = {"start": rfc3339(start), "end": rfc3339(end), "step": step_s}
        try:
            raw, took = self.source.range(query, start, end, step_s)
        except BackendError as exc:
            self._record(query, 0.0, f"error: {exc}", span)
            inconclusive(f"{exc}; query: {query}")
        if not isinstance(raw, list):
            self._record(query, took, "error: unexpected result shape", span)
            inconclusive(
                f"{self.source.settings.display_url} answered with an unexpected "
                f"result shape; query: {query}"
            )
        out = [
            RangeSeries(
                dict(s.get("metric", {})),
                [(float(t), _to_float(v)) for t, v in s.get("values", [])],
            )
            for s in raw
        ]
        self._record(query, took, f"{len(out)} series", span)
        if not out and not allow_empty:
            inconclusive(
                _no_data(query, "allow_empty=True", over=f"{rfc3339(start)} to {rfc3339(end)}")
            )
        bad = [s for s in out if not all(math.isfinite(v) for _, v in s.points)]
        if bad and not allow_nan:
            inconclusive(_not_finite(query, len(bad), len(out), bad[0].labels, points=True))
        return out

    def check_fresh(self, query: str) -> None:
        """Inconclusive when a series the query reads stopped reporting.

        A selector whose series report, but whose newest sample is older than
        ``max_staleness``, is stale. One with no sample in the 5m lookback is stale when it did
        report within the query's longest range (or the last hour): the target went quiet.
        One that never reported in that range is absent, which the query's own result shows.
        """
        limit = self.source.settings.max_staleness_s
        lookback = max([3600.0, *query_ranges(query)])
        for selector in series_selectors(query):
            ages = self.vector(
                f"time() - timestamp({selector})", check_staleness=False, allow_empty=True
            )
            if ages:
                oldest = max(s.value for s in ages)
                if oldest > limit:
                    inconclusive(
                        f"series {selector} is stale: newest sample {oldest:.0f}s old "
                        f"at {rfc3339(self.at)} (max_staleness {limit:.0f}s)"
                    )
                continue
            seen = self.vector(
                f"count(count_over_time({selector}[{format_duration(lookback)}]))",
                check_staleness=False,
                allow_empty=True,
            )
            if seen:
                inconclusive(
                    f"series {selector} stopped reporting: no sample in the 5m before "
                    f"the evaluation instant {rfc3339(self.at)}, though it reported "
                    f"earlier; the target is down or not scraped"
                )

    def _instant(self, query: str) -> Any:
        try:
            raw, took = self.source.instant(query)
        except BackendError as exc:
            self._record(query, 0.0, f"error: {exc}")
            inconclusive(f"{exc}; query: {query}")
        if not isinstance(raw, list):
            self._record(query, took, "error: unexpected result shape")
            inconclusive(
                f"{self.source.settings.display_url} answered with an unexpected "
                f"result shape; query: {query}"
            )
        self._record(query, took, _summary(raw))
        return raw

    def _record(
        self, query: str, took: float, summary: str, range_: dict[str, Any] | None = None
    ) -> None:
        self.gate.add_query(
            QueryRecord(
                query=query,
                at=rfc3339(self.at),
                duration_s=round(took, 4),
                summary=summary,
                range=range_,
            )
        )


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _no_data(query: str, allow: str = "", over: str = "") -> str:
    # VictoriaMetrics leaves NaN samples (a 0/0) out of its answers where Prometheus returns them.
    nan = "on VictoriaMetrics also an answer that was NaN, e.g. 0/0"
    where = (
        f"in {over} ({nan})"
        if over
        else f"(metric missing, no traffic, or older than the 5m lookback; {nan})"
    )
    hint = f"; pass {allow} if no series is an answer the gate handles" if allow else ""
    return f"query returned no data {where}{hint}: {query}"


def _not_finite(
    query: str, bad: int, total: int, labels: Mapping[str, str], *, points: bool = False
) -> str:
    what = "with NaN or infinite points" if points else "NaN or infinite"
    return (
        f"query returned {bad} of {total} series {what} (usually a 0/0 with no traffic), e.g. "
        f"{_labels(labels)}; pass allow_nan=True if the gate handles them: {query}"
    )


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _summary(raw: list[Any]) -> str:
    if not raw:
        return "empty"
    if len(raw) == 2 and not isinstance(raw[0], dict):
        return f"scalar {raw[1]}"
    if len(raw) == 1 and isinstance(raw[0], dict):
        return f"1 series, {raw[0].get('value', [None, '?'])[1]}"
    return f"{len(raw)} series"
