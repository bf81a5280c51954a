"""Where the Prometheus client connects, with what credentials, and how long it waits."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pytest_rollout.redact import REDACTED, redact_url

# Credentials come from the environment only, so they never sit in a config file or a report.
ENV_TOKEN = "ROLLOUT_PROMETHEUS_TOKEN"
ENV_USER = "ROLLOUT_PROMETHEUS_USER"
ENV_PASSWORD = "ROLLOUT_PROMETHEUS_PASSWORD"
ENV_CA_BUNDLE = "ROLLOUT_PROMETHEUS_CA_BUNDLE"

# Where timeout and retries are set, for messages, when the caller does not say which profile.
DEFAULT_ORIGIN = "the environment's profile in rollout.toml"


@dataclass(frozen=True)
class PromSettings:
    url: str
    timeout_s: float = 10.0
    retries: int = 1
    max_staleness_s: float = 300.0
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    auth: tuple[str, str] | None = field(default=None, repr=False)
    ca_bundle: str | None = None
    # Where timeout/retries came from (e.g. "[environments.production] of gates/rollout.toml"),
    # so a timeout message says which keys to change.
    origin: str = DEFAULT_ORIGIN

    @classmethod
    def from_env(
        cls,
        url: str,
        *,
        timeout_s: float,
        retries: int,
        max_staleness_s: float,
        origin: str = DEFAULT_ORIGIN,
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
            origin=origin,
        )

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def __repr__(self) -> str:  # the URL may carry user:password@ (tracebacks, --showlocals)
        return (
            f"PromSettings(url={self.display_url!r}, timeout_s={self.timeout_s!r}, "
            f"retries={self.retries!r}, max_staleness_s={self.max_staleness_s!r}, "
            f"ca_bundle={self.ca_bundle!r})"
        )


def validate_prometheus_url(url: str, source: str) -> None:
    """Refuse, when the run starts, a URL no gate could query; ``source`` names where it came
    from (``--rollout-prometheus-url``, ``ROLLOUT_PROMETHEUS_URL``, ``[environments.X]
    prometheus_url``). The message shows the URL without credentials."""
    problem = _url_problem(url)
    if problem:
        raise ValueError(
            f"{source}: {_shown(url)} is not a Prometheus URL ({problem}); write it as "
            "http://host:port or https://host[:port][/path], e.g. http://prometheus:9090"
        )


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
    except ValueError:
        return "the port is not a number"
    if not url.lower().startswith(("http://", "https://")):
        return "it does not start with http:// or https://"
    if not parts.hostname:
        return "it names no host"
    return None


def _shown(url: str) -> str:
    """The URL as a message may show it: no user info, no query string, even when malformed."""
    if not url:
        return "''"
    try:
        if "://" in url and urlsplit(url).netloc:
            return redact_url(url)
    except ValueError:
        pass  # a bad port: fall through to the textual redaction
    scheme, sep, rest = url.rpartition("://") if "://" in url else ("", "", url)
    rest = rest.split("?", 1)[0].split("#", 1)[0]
    if "@" in rest.split("/", 1)[0]:
        rest = f"{REDACTED}@" + rest.split("@", 1)[1]
    return f"{scheme}{sep}{rest}"
