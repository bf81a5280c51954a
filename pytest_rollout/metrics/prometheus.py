"""Prometheus HTTP API source (any PromQL-compatible backend), fail-closed.

Every query is evaluated at the run's pinned instant and recorded on the gate that sent it.
Anything that keeps a gate from knowing the truth -- backend down, HTTP error, garbage,
empty result, NaN, +-Inf, stale series -- ends the gate *inconclusive*, never pass.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pytest_rollout.durations import format_duration, parse_duration
from pytest_rollout.gate import GateRecord, QueryRecord
from pytest_rollout.instants import rfc3339
from pytest_rollout.outcomes import inconclusive
from pytest_rollout.redact import redact_url

# Credentials come from the environment only, so they never sit in a config file or a report.
ENV_TOKEN = "ROLLOUT_PROMETHEUS_TOKEN"
ENV_USER = "ROLLOUT_PROMETHEUS_USER"
ENV_PASSWORD = "ROLLOUT_PROMETHEUS_PASSWORD"
ENV_CA_BUNDLE = "ROLLOUT_PROMETHEUS_CA_BUNDLE"


class BackendError(Exception):
    """The metrics backend could not answer a query (message is safe to show)."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class RangeSeries:
    labels: dict[str, str]
    points: list[tuple[float, float]]  # (unix seconds, value)


@dataclass(frozen=True)
class PromSettings:
    url: str
    timeout_s: float = 10.0
    retries: int = 1
    max_staleness_s: float = 300.0
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    auth: tuple[str, str] | None = field(default=None, repr=False)
    ca_bundle: str | None = None

    @classmethod
    def from_env(
        cls,
        url: str,
        *,
        timeout_s: float,
        retries: int,
        max_staleness_s: float,
        environ: Mapping[str, str] | None = None,
    ) -> PromSettings:
        env = os.environ if environ is None else environ
        headers = {"Authorization": f"Bearer {env[ENV_TOKEN]}"} if env.get(ENV_TOKEN) else {}
        auth = (env[ENV_USER], env.get(ENV_PASSWORD, "")) if env.get(ENV_USER) else None
        return cls(
            url=url.rstrip("/"),
            timeout_s=timeout_s,
            retries=retries,
            max_staleness_s=max_staleness_s,
            headers=headers,
            auth=auth,
            ca_bundle=env.get(ENV_CA_BUNDLE) or None,
        )

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    def __repr__(self) -> str:  # the URL may carry user:password@ (tracebacks, --showlocals)
        return (
            f"PromSettings(url={self.display_url!r}, timeout_s={self.timeout_s!r}, "
            f"retries={self.retries!r}, max_staleness_s={self.max_staleness_s!r}, "
            f"ca_bundle={self.ca_bundle!r})"
        )


class PrometheusSource:
    """One client per run, pinned to one evaluation instant."""

    def __init__(self, settings: PromSettings, at: float) -> None:
        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        self.settings = settings
        self.at = at
        # Few, quick retries: a down backend must make gates inconclusive in seconds, not minutes.
        retry = Retry(
            total=settings.retries,
            backoff_factor=0.2,
            status_forcelist=(502, 503, 504),
            allowed_methods=("GET",),
            raise_on_status=False,
        )
        self._client = PrometheusConnect(
            url=settings.url,
            headers=dict(settings.headers) or None,
            auth=settings.auth,
            retry=retry,
            timeout=settings.timeout_s,
        )
        if settings.ca_bundle:
            self._client._session.verify = settings.ca_bundle

    def instant(self, query: str) -> tuple[Any, float]:
        """Raw ``data.result`` of an instant query at the pinned instant, and seconds taken."""
        return self._call(lambda: self._client.custom_query(query, params={"time": self.at}))

    def range(self, query: str, start: float, end: float, step_s: float) -> tuple[Any, float]:
        return self._call(
            lambda: self._client.custom_query_range(
                query,
                start_time=datetime.fromtimestamp(start, UTC),
                end_time=datetime.fromtimestamp(end, UTC),
                step=format_duration(step_s),
            )
        )

    def _call(self, fn: Any) -> tuple[Any, float]:
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException

        started = time.monotonic()
        try:
            result = fn()
        except PrometheusApiClientException as exc:
            raise BackendError(_http_error_text(str(exc))) from None
        except requests.exceptions.Timeout:
            raise BackendError(
                f"no answer from {self.settings.display_url} within {self.settings.timeout_s:g}s"
            ) from None
        except requests.exceptions.ConnectionError as exc:
            if _is_read_timeout(exc):  # with a Retry, requests reports read timeouts this way
                raise BackendError(
                    f"no answer from {self.settings.display_url} within "
                    f"{self.settings.timeout_s:g}s"
                ) from None
            raise BackendError(f"cannot connect to {self.settings.display_url}") from None
        except requests.exceptions.JSONDecodeError:  # also a RequestException: catch it first
            raise BackendError(
                f"{self.settings.display_url} answered with something that is "
                "not a Prometheus API response (not JSON)"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise BackendError(
                f"request to {self.settings.display_url} failed: {type(exc).__name__}"
            ) from None
        except (ValueError, KeyError, TypeError):
            raise BackendError(
                f"{self.settings.display_url} answered with something that is "
                "not a Prometheus API response"
            ) from None
        return result, time.monotonic() - started


def _is_read_timeout(exc: Exception) -> bool:
    from urllib3.exceptions import MaxRetryError, ReadTimeoutError

    reason = exc.args[0] if exc.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, ReadTimeoutError)


def _http_error_text(text: str) -> str:
    match = re.search(r"HTTP Status Code (\d+)", text)
    code = match.group(1) if match else "?"
    err = re.search(r'"error"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
    detail = f": {err.group(1)}" if err else ""
    if code == "400":
        return f"HTTP 400, the query was rejected{detail}"
    return f"HTTP {code} from the metrics backend{detail}"


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

    def vector(self, query: str, *, check_staleness: bool = True) -> list[Sample]:
        """All series of an instant query (``[]`` when empty); backend failures -> inconclusive."""
        raw = self._instant(query)
        if isinstance(raw, list) and len(raw) == 2 and not isinstance(raw[0], dict):
            samples = [Sample({}, _to_float(raw[1]))]  # scalar result
        else:
            samples = [Sample(dict(s.get("metric", {})), _to_float(s["value"][1])) for s in raw]
        if check_staleness and samples:
            self.check_fresh(query)
        return samples

    def value(self, query: str) -> float:
        """Exactly one finite number, or the gate ends inconclusive saying why."""
        samples = self.vector(query)
        if not samples:
            inconclusive(
                f"query returned no data (metric missing, no traffic, or older than the "
                f"5m lookback): {query}"
            )
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
    ) -> list[RangeSeries]:
        """A range query ending at the pinned instant (default: the last ``window_s``)."""
        end = self.at if end is None else end
        start = end - window_s if start is None else start
        # Prometheus refuses more than 11,000 points per series; widen the step instead.
        step_s = max(step_s, (end - start) / 10_000)
        try:
            raw, took = self.source.range(query, start, end, step_s)
        except BackendError as exc:
            self._record(query, 0.0, f"error: {exc}", {"start": start, "end": end, "step": step_s})
            inconclusive(f"{exc}; query: {query}")
        out = [
            RangeSeries(
                dict(s.get("metric", {})),
                [(float(t), _to_float(v)) for t, v in s.get("values", [])],
            )
            for s in raw
        ]
        self._record(
            query,
            took,
            f"{len(out)} series",
            {"start": rfc3339(start), "end": rfc3339(end), "step": step_s},
        )
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
            ages = self.vector(f"time() - timestamp({selector})", check_staleness=False)
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
