"""HTTP to a Prometheus API: retries, one failure budget per run, errors a reviewer can act on."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pytest_rollout.metrics.settings import (
    ENV_CA_BUNDLE,
    ENV_PASSWORD,
    ENV_TOKEN,
    ENV_USER,
    PromSettings,
)

if TYPE_CHECKING:
    import requests

E = TypeVar("E", bound=BaseException)

MAX_DETAIL = 300  # characters of a backend's error text shown in a reason


class BackendError(Exception):
    """The metrics backend could not answer a query (message is safe to show)."""


class PromApi:
    """GETs on one Prometheus HTTP API, with one failure budget for the whole run.

    A query that gets no HTTP answer at all (timeout, refused, TLS) once its retries are spent
    opens the circuit: every later query fails at once with the same reason, so a hung backend
    costs the run (retries + 1) x timeout once, not once per gate. HTTP answers (a rejected
    query, a 5xx) come back quickly and concern one query, so they leave the circuit closed.
    """

    def __init__(self, settings: PromSettings) -> None:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.util.retry import Retry

        self.settings = settings
        self.open_reason: str | None = None
        # Few, quick retries: a down backend must make gates inconclusive in seconds, not minutes.
        retry = Retry(
            total=settings.retries,
            backoff_factor=0.2,
            status_forcelist=(502, 503, 504),
            allowed_methods=("GET",),
            raise_on_status=False,
        )
        adapter = HTTPAdapter(max_retries=retry)
        self._session = requests.Session()
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        # Passed on every request: a session-level verify loses to REQUESTS_CA_BUNDLE in the env.
        self._verify: str | bool = settings.ca_bundle or True
        self._session.headers.update(settings.headers)
        self._session.auth = settings.auth

    def result(self, path: str, params: dict[str, Any]) -> tuple[Any, float]:
        """``data.result`` of ``GET {url}{path}``, and the seconds it took."""
        if self.open_reason is not None:
            raise BackendError(self.open_reason)
        started = time.monotonic()
        try:
            response = self._get(path, params)
        except BackendError as exc:
            self.open_reason = f"{exc}; no further queries are sent to it in this run"
            raise BackendError(self.open_reason) from None
        return _result(response, self.settings.display_url), time.monotonic() - started

    def _get(self, path: str, params: dict[str, Any]) -> requests.Response:
        """The HTTP response, or BackendError when there is none to read."""
        import requests

        s = self.settings
        try:
            return self._session.get(
                f"{s.url}{path}", params=params, timeout=s.timeout_s, verify=self._verify
            )
        except requests.exceptions.SSLError as exc:  # a ConnectionError too: catch it first
            raise BackendError(self._tls_failure(exc)) from None
        except requests.exceptions.Timeout:
            raise BackendError(self._no_answer()) from None
        except requests.exceptions.ConnectionError as exc:
            if _is_read_timeout(exc):  # with a Retry, requests reports read timeouts this way
                raise BackendError(self._no_answer()) from None
            raise BackendError(
                f"cannot connect to {s.display_url}{_os_reason(exc)} after "
                f"{_attempts(s)}; check the URL and that Prometheus is up and reachable from here"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise BackendError(f"request to {s.display_url} failed: {type(exc).__name__}") from None
        except OSError as exc:
            if not s.ca_bundle:
                raise
            # requests opens the CA bundle before it connects; a bad path fails every query.
            raise BackendError(
                f"{ENV_CA_BUNDLE}={s.ca_bundle} is not a usable CA bundle "
                f"({exc.strerror or type(exc).__name__}); point it at the PEM file of the CA "
                "that signed Prometheus' certificate"
            ) from None

    def _no_answer(self) -> str:
        s = self.settings
        return (
            f"no answer from {s.display_url} within {s.timeout_s:g}s per attempt, "
            f"{_attempts(s)} (timeout = {s.timeout_s:g}s, retries = {s.retries} "
            f"in {s.origin})"
        )

    def _tls_failure(self, exc: Exception) -> str:
        s = self.settings
        verify = _find(exc, ssl.SSLCertVerificationError)
        if verify is None:
            other = _find(exc, ssl.SSLError)
            why = (other.reason or str(other)).lower().replace("_", " ") if other else "unknown"
            return (
                f"TLS handshake with {s.display_url} failed: {why}; check that the server "
                "speaks https on that port (or use http://)"
            )
        why = f"certificate verify failed: {verify.verify_message or verify.reason}"
        if s.ca_bundle:
            hint = (
                f"{ENV_CA_BUNDLE}={s.ca_bundle} does not vouch for it: point it at the PEM "
                "certificate of the CA that signed Prometheus' certificate"
            )
        else:
            hint = (
                f"if Prometheus uses a private CA or a self-signed certificate, set "
                f"{ENV_CA_BUNDLE} to that CA's PEM certificate"
            )
        return f"TLS verification of {s.display_url} failed: {why}; {hint}"


def _attempts(settings: PromSettings) -> str:
    n = settings.attempts
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def _result(response: requests.Response, url: str) -> Any:
    try:
        body = response.json()
    except ValueError:  # requests' JSONDecodeError is one
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if response.status_code != 200 or error is not None:
        detail = str(error) if error is not None else (response.reason or "")
        raise BackendError(_http_error(response.status_code, detail[:MAX_DETAIL]))
    if body is None:
        raise BackendError(
            f"{url} answered with something that is not a Prometheus API response (not JSON)"
        )
    try:
        return body["data"]["result"]
    except (KeyError, TypeError):
        raise BackendError(
            f"{url} answered with something that is not a Prometheus API response"
        ) from None


def _http_error(code: int, detail: str) -> str:
    shown = f": {detail}" if detail else ""
    if code == 400:
        return f"HTTP 400, the query was rejected{shown}"
    if code == 422:
        return f"HTTP 422, the query could not be evaluated{shown}"
    if code in (401, 403):
        return (
            f"HTTP {code} from the metrics backend{shown}; set {ENV_TOKEN} (bearer token) or "
            f"{ENV_USER} and {ENV_PASSWORD} (basic auth) to credentials it accepts"
        )
    return f"HTTP {code} from the metrics backend{shown}"


def _is_read_timeout(exc: Exception) -> bool:
    from urllib3.exceptions import MaxRetryError, ReadTimeoutError

    reason = exc.args[0] if exc.args else None
    return isinstance(reason, MaxRetryError) and isinstance(reason.reason, ReadTimeoutError)


def _os_reason(exc: Exception) -> str:
    """`` (connection refused)``: the operating system's words, when it gave any."""
    found = _find(exc, OSError, lambda e: bool(e.strerror))
    return f" ({str(found.strerror).lower()})" if found else ""


def _find(
    exc: BaseException, kind: type[E], accept: Callable[[E], bool] = lambda e: True
) -> E | None:
    """The first ``kind`` among an exception's wrapped causes (requests -> urllib3 -> socket)."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, kind) and accept(item):
            return item
        todo += [*item.args, getattr(item, "reason", None), item.__cause__, item.__context__]
    return None
