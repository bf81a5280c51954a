"""Instants as text: the one RFC 3339 formatter and parser every module uses."""

from __future__ import annotations

import re
from datetime import UTC, datetime


def rfc3339(ts: float, *, millis: bool = False) -> str:
    """``2026-11-25T14:00:00Z`` (or ``...00.123Z`` with ``millis``) for unix seconds."""
    moment = datetime.fromtimestamp(ts, UTC)
    if millis:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> float:
    """Unix seconds from RFC 3339 (``2026-11-25T14:00:00Z``) or a plain number of seconds."""
    value = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        seconds = float(value)
    else:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"bad time {text!r}: use RFC 3339 (2026-11-25T14:00:00Z) or unix seconds"
            ) from None
        if parsed.tzinfo is None:
            raise ValueError(f"bad time {text!r}: add a timezone, e.g. a trailing Z for UTC")
        seconds = parsed.timestamp()
    if not 0 < seconds < 1e11:
        raise ValueError(f"bad time {text!r}: out of range")
    return seconds
