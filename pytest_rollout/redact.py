"""Keep credentials out of everything the report shows: env secrets, URL user info, arguments."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit, urlunsplit

REDACTED = "[redacted]"
# Environment variables whose values are credentials (ROLLOUT_PROMETHEUS_TOKEN, AWS_SECRET_KEY...).
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|PASSWD|SECRET|KEY|CREDENTIAL", re.IGNORECASE)
# Options whose value is a credential: ``--api-token X``, ``--password=X``.
SECRET_OPTION = re.compile(r"(TOKEN|PASSWORD|PASSWD|SECRET|KEY|CREDENTIALS?)$", re.IGNORECASE)
# A bare argument naming a credential variable: ``--metadata DEPLOY_TOKEN value``, ``API_KEY=v``.
SECRET_WORD = re.compile(r"^[A-Z0-9_]*(TOKEN|PASSWORD|PASSWD|SECRET|KEY|CREDENTIALS?)[A-Z0-9_]*$")
# Shorter values would redact ordinary words ("true", "1") all over the report.
MIN_SECRET_LEN = 6
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")


def redact_url(url: str) -> str:
    """The URL without user info, query string or fragment, safe for reports and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def secret_values(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Values of the environment's credential-like variables."""
    env = os.environ if environ is None else environ
    return tuple(v for k, v in env.items() if is_secret_name(k) and len(v) >= MIN_SECRET_LEN)


def url_secrets(url: str) -> list[str]:
    """The password and the query-string values of a URL (``?token=...``)."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
    except ValueError:
        return []
    found += [value for _, value in parse_qsl(parts.query)]
    return [value for value in found if len(value) >= MIN_SECRET_LEN]


def strip_userinfo(url: str) -> str:
    """``https://user:pw@host/p?token=x`` -> ``https://host/p`` (query strings carry tokens too)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return REDACTED
    if not parts.netloc or ("@" not in parts.netloc and not parts.query):
        return url
    host = parts.hostname or ""
    if port:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class Redactor:
    """Removes known secret values, URL user info and URL query strings from text."""

    secrets: tuple[str, ...] = ()

    @classmethod
    def build(
        cls,
        *,
        environ: Mapping[str, str] | None = None,
        args: Iterable[str] = (),
        urls: Iterable[str | None] = (),
    ) -> Redactor:
        """Secrets from the environment, from secret-named options and from URLs in ``args``."""
        found = list(secret_values(environ))
        args = list(args)
        for index, arg in enumerate(args):
            name, eq, value = arg.partition("=")
            if _names_secret(name):
                if not eq and index + 1 < len(args):
                    value = args[index + 1]
                if len(value) >= MIN_SECRET_LEN:
                    found.append(value)
            for match in _URL.finditer(arg):
                found += url_secrets(match.group(0))
        for url in urls:
            if url:
                found += url_secrets(url)
        # Longest first, so a secret containing another is replaced whole.
        return cls(tuple(sorted(set(found), key=len, reverse=True)))

    def __call__(self, text: str) -> str:
        text = _URL.sub(lambda m: strip_userinfo(m.group(0)), text)
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text

    def args(self, args: Iterable[str]) -> list[str]:
        """Command-line arguments with secret option values and URL credentials removed."""
        out: list[str] = []
        hide_next = False
        for arg in args:
            if hide_next:
                out.append(REDACTED)
                hide_next = False
                continue
            name, eq, _value = arg.partition("=")
            if _names_secret(name):
                out.append(f"{name}={REDACTED}" if eq else arg)
                hide_next = not eq
                continue
            out.append(self(arg))
        return out


def _names_secret(name: str) -> bool:
    """``--api-token`` (an option) or ``DEPLOY_TOKEN`` (a variable name given as an argument)."""
    if name.startswith("--"):
        return bool(SECRET_OPTION.search(name))
    return bool(SECRET_WORD.match(name))
