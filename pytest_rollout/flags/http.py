"""``http://host:port`` / ``https://...``: the JSON admin API a service serves for its flags.

The contract (the staging service implements it; any service can):

* ``GET  {base}/api/v1/admin/features`` -> ``200 {"flags": {"<name>": {"type": "boolean" |
  "cohort" | "number", "value": ...}}}``
* ``PUT  {base}/api/v1/admin/features`` with ``{"flags": {"blended_recall": 25}, "reason":
  "...", "actor": "..."}`` -> ``200`` and the new full state (same shape as GET); ``400
  {"error": "..."}`` on bad input; ``401`` on a missing or wrong token.
* Authentication: ``Authorization: Bearer <token>`` with the token taken from the environment
  variable ``ROLLOUT_FLAGS_TOKEN``.  The token never appears in errors, logs or audit lines.

The default audit log is ``./rollout-flags-audit.jsonl``.  Unlike the flag file, the service
does not carry change ids, so a change interrupted between its audit line and its outcome line
is reconciled by comparing values (see ``docs/flags.md``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytest_rollout.flags.audit import AuditLog, ChangeContext
from pytest_rollout.flags.base import (
    FLAG_TYPES,
    FlagBackendError,
    FlagError,
    FlagFormatError,
    FlagState,
    FlagValue,
    FlagValueError,
    FlagVerificationError,
    UnknownFlagError,
    coerce_value,
)
from pytest_rollout.flags.controller import AuditedController, BeforeWrite
from pytest_rollout.redact import redact_url

__all__ = [
    "ADMIN_PATH",
    "DEFAULT_AUDIT_LOG",
    "TOKEN_ENV",
    "HttpFlagController",
    "parse_features",
]

ADMIN_PATH = "/api/v1/admin/features"
TOKEN_ENV = "ROLLOUT_FLAGS_TOKEN"
DEFAULT_AUDIT_LOG = Path("rollout-flags-audit.jsonl")
DEFAULT_TIMEOUT_S = 5.0


def parse_features(payload: object, *, source: str) -> dict[str, FlagState]:
    """The flags in a GET/PUT answer; FlagFormatError names what is wrong and where."""
    if not isinstance(payload, dict) or not isinstance(payload.get("flags"), dict):
        raise FlagFormatError(f'{source}: expected a JSON object {{"flags": {{...}}}}')
    states: dict[str, FlagState] = {}
    for name, entry in payload["flags"].items():
        if not isinstance(entry, dict) or entry.get("type") not in FLAG_TYPES:
            raise FlagFormatError(f"{source}: flag {name!r} has no valid type: {entry!r}")
        kind = entry["type"]
        value = entry.get("value")
        if kind == "boolean" and isinstance(value, bool):
            states[name] = FlagState(name, "boolean", value)
        elif (
            kind != "boolean"
            and isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
        ):
            states[name] = FlagState(name, kind, float(value))
        else:
            raise FlagFormatError(f"{source}: flag {name!r} ({kind}) has value {value!r}")
    return states


def _same(a: FlagValue, b: FlagValue) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    return math.isclose(float(a), float(b), abs_tol=1e-6)


class HttpFlagController(AuditedController):
    """Flags behind the JSON admin API; verified by reading them back with GET."""

    scheme = "http"
    stamps_change_ids = False

    def __init__(
        self,
        base_url: str,
        *,
        audit: AuditLog | None,
        context: ChangeContext,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        super().__init__(base_url, audit=audit, context=context)
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s

    @classmethod
    def from_uri(
        cls, uri: str, *, audit_log: Path | None, context: ChangeContext
    ) -> HttpFlagController:
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FlagFormatError(f"not an http(s) flag URI: {redact_url(uri)!r}")
        if parts.username is not None or parts.password is not None:
            # Credentials in a URI end up in shell history and CI logs; the token has its place.
            raise FlagFormatError(
                f"credentials in the flag URI {redact_url(uri)!r} are not accepted; "
                f"put the bearer token in {TOKEN_ENV}"
            )
        audit = AuditLog(audit_log if audit_log is not None else DEFAULT_AUDIT_LOG)
        return cls(uri, audit=audit, context=context)

    @property
    def redacted_uri(self) -> str:
        return redact_url(self.base_url)

    # -- HTTP -----------------------------------------------------------------------------

    def _request(self, method: str, body: Mapping[str, Any] | None = None) -> Any:
        import requests

        url = self.base_url + ADMIN_PATH
        where = f"{method} {redact_url(url)}"
        headers = {"Accept": "application/json"}
        token = os.environ.get(TOKEN_ENV)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            response = requests.request(
                method, url, json=body, headers=headers, timeout=self.timeout_s
            )
        except requests.Timeout:
            raise FlagBackendError(
                f"{where}: no answer within {self.timeout_s:g} s"
                + ("; the change may or may not have taken effect" if method == "PUT" else ""),
                took_effect=None if method == "PUT" else False,
            ) from None
        except requests.ConnectionError as exc:
            # A refused connection never reached the service; anything else might have.
            refused = "refused" in str(exc).lower()
            raise FlagBackendError(
                f"{where}: cannot connect ({type(exc).__name__})",
                took_effect=False if refused or method == "GET" else None,
            ) from None
        except requests.RequestException as exc:
            raise FlagBackendError(f"{where}: {type(exc).__name__}") from None
        return self._decode(response, where)

    def _decode(self, response: Any, where: str) -> Any:
        status = int(response.status_code)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if status == 200:
            if payload is None:
                raise FlagFormatError(f"{where}: HTTP 200 but the body is not JSON")
            return payload
        detail = ""
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            detail = ": " + payload["error"][:300]
        if status == 401:
            present = "set" if os.environ.get(TOKEN_ENV) else "not set"
            raise FlagBackendError(
                f"{where}: HTTP 401 unauthorized (check {TOKEN_ENV}, which is {present}){detail}"
            )
        if status == 400:
            raise FlagValueError(f"{where}: HTTP 400 rejected{detail}")
        if status == 404 and detail.startswith(": unknown flag"):
            raise UnknownFlagError(f"{where}: HTTP 404{detail}")
        raise FlagBackendError(f"{where}: HTTP {status}{detail}")

    # -- controller -------------------------------------------------------------------------

    def get_all(self) -> dict[str, FlagState]:
        return parse_features(self._request("GET"), source=f"GET {self.redacted_uri}")

    def _plan(self, changes: Mapping[str, FlagValue]) -> dict[str, FlagState]:
        return self._planned(self.get_all(), changes)

    @staticmethod
    def _planned(
        current: Mapping[str, FlagState], changes: Mapping[str, FlagValue]
    ) -> dict[str, FlagState]:
        after = dict(current)
        for name, raw in changes.items():
            if name not in current:
                known = ", ".join(sorted(current)) or "none"
                raise UnknownFlagError(f"unknown flag {name!r} (known: {known})")
            state = current[name]
            after[name] = FlagState(name, state.type, coerce_value(state, raw))
        return after

    def _apply(
        self,
        changes: Mapping[str, FlagValue],
        *,
        change_id: str,
        reason: str,
        before_write: BeforeWrite,
    ) -> tuple[dict[str, FlagState], dict[str, FlagState]]:
        # GET then PUT is not atomic; the service serialises PUTs, and "before" is what we saw.
        before = self.get_all()
        planned = self._planned(before, changes)
        before_write(before, planned, None)
        body = {
            "flags": {name: planned[name].value for name in changes},
            "reason": reason,
            "actor": self.context.actor,
        }
        answer = parse_features(self._request("PUT", body), source=f"PUT {self.redacted_uri}")
        expected = {name: planned[name].value for name in changes}
        self._compare(expected, answer, "the PUT answer")
        self._read_back(expected)
        return before, answer

    def _read_back(self, expected: Mapping[str, FlagValue]) -> None:
        try:
            current = self.get_all()
        except FlagError as exc:
            raise FlagVerificationError(f"could not read the flags back: {exc}") from exc
        self._compare(expected, current, "GET after the change")

    @staticmethod
    def _compare(
        expected: Mapping[str, FlagValue], observed: Mapping[str, FlagState], what: str
    ) -> None:
        wrong = [
            f"{name}: expected {value!r}, got "
            + (repr(observed[name].value) if name in observed else "nothing")
            for name, value in expected.items()
            if name not in observed or not _same(value, observed[name].value)
        ]
        if wrong:
            raise FlagVerificationError(f"{what} disagrees: " + "; ".join(wrong))
