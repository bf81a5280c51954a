"""Durations in the Prometheus notation (``30s``, ``5m``, ``1h30m``, ``7d``)."""

from __future__ import annotations

import re

_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
    "y": 31536000.0,
}
# A window reaching before 1970 breaks every timestamp computed from it.
MAX_DURATION_S = 100 * 31536000.0
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse_duration(text: str) -> float:
    """Seconds in ``text``; raises ValueError with the text for anything else."""
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string like '30m', got {text!r}")
    stripped = text.strip()
    pos, total = 0, 0.0
    for match in _PART.finditer(stripped):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(stripped):
        raise ValueError(
            f"bad duration {text!r}: use a number and unit, e.g. '30s', '5m', '1h', '7d'"
        )
    if total <= 0:
        raise ValueError(f"bad duration {text!r}: must be longer than zero")
    if total > MAX_DURATION_S:  # also catches inf from a digit string too long for a float
        raise ValueError(f"bad duration {text!r}: longer than 100y")
    return total


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for whole seconds (``3600`` -> ``1h``)."""
    remaining = int(round(seconds))
    if remaining <= 0:
        raise ValueError(f"duration must be positive, got {seconds}")
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def format_elapsed(seconds: float) -> str:
    """How long something has run, for people: ``0s`` under half a second, else like
    :func:`format_duration`. Elapsed time can be zero (a look right after the phase began);
    a configured duration cannot, which is why ``format_duration`` refuses it."""
    if not seconds >= 0.0:  # also NaN
        raise ValueError(f"elapsed time must be zero or more, got {seconds}")
    return format_duration(seconds) if round(seconds) >= 1 else "0s"
