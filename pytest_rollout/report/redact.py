"""Keep credentials out of everything the report shows: env secrets, URL user info, arguments."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

REDACTED = "[redacted]"
# Environment variables whose values are credentials (ROLLOUT_PROMETHEUS_TOKEN, AWS_SECRET_KEY...).
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|KEY|CREDENTIAL", re.IGNORECASE)
# Shorter values would redact ordinary words ("true", "1") all over the report.
MIN_SECRET_LEN = 6
# Options whose value is a credential: ``--api-token X``, ``--password=X``.
SECRET_OPTION = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|KEY|CREDENTIALS?)$", re.IGNORECASE)
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def secret_values(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Values of the environment's credential-like variables, longest first."""
    env = os.environ if environ is None else environ
    values = {v for k, v in env.items() if is_secret_name(k) and len(v) >= MIN_SECRET_LEN}
    return tuple(sorted(values, key=len, reverse=True))


def strip_userinfo(url: str) -> str:
    """``https://user:pw@host/p?token=x`` -> ``https://host/p`` (query strings carry tokens too)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return REDACTED
    if not parts.netloc:
        return url
    host = parts.hostname or ""
    if port:
        host = f"{host}:{port}"
    if "@" not in parts.netloc and not parts.query:
        return url
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """The text without credential values and without user info or query strings in URLs."""
    for secret in secret_values() if secrets is None else secrets:
        text = text.replace(secret, REDACTED)
    return _URL.sub(lambda m: strip_userinfo(m.group(0)), text)


def redact_args(args: Iterable[str], secrets: Iterable[str] | None = None) -> list[str]:
    """Command-line arguments with secrets, ``--x-token=...`` values and URL user info removed."""
    known = tuple(secret_values() if secrets is None else secrets)
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        name, eq, _value = arg.partition("=")
        if arg.startswith("--") and SECRET_OPTION.search(name):
            if eq:
                out.append(f"{name}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(redact(arg, known))
    return out
