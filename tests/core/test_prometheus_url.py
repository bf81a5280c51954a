"""A Prometheus URL from the flag or the environment is checked when the run starts."""

from __future__ import annotations

import pytest

from pytest_rollout.metrics.prometheus import validate_prometheus_url

FLAG = "--rollout-prometheus-url"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9090",
        "https://mimir.example.com/prometheus",
        "https://user:pw@thanos.example.com:10902/",
        "HTTP://PROM:9090",
    ],
)
def test_http_and_https_urls_are_accepted(url: str) -> None:
    validate_prometheus_url(url, FLAG)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("prometheus:9090", "prometheus:9090"),  # the common slip: no scheme
        ("localhost", "localhost"),
        ("127.0.0.1:9090/api", "127.0.0.1:9090/api"),
        ("ftp://prometheus:9090", "ftp://prometheus:9090"),
        ("http://", "http://"),
        ("http:///api/v1", "http:///api/v1"),
        ("http://prometheus:ninety", "http://prometheus:ninety"),
        ("", "''"),
    ],
)
def test_url_without_http_scheme_or_host_is_refused_naming_source(url: str, shown: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_prometheus_url(url, FLAG)
    message = str(info.value)
    assert message.startswith(f"{FLAG}: "), message
    assert shown in message
    assert "http://" in message and "https://" in message  # what to write instead


@pytest.mark.parametrize(
    "source", ["ROLLOUT_PROMETHEUS_URL", "[environments.production] prometheus_url"]
)
def test_message_names_where_the_url_came_from(source: str) -> None:
    with pytest.raises(ValueError, match=rf"^{__import__('re').escape(source)}: "):
        validate_prometheus_url("prometheus:9090", source)


@pytest.mark.parametrize(
    "url",
    [
        "admin:s3cr3t-pass@prometheus:9090",  # no scheme, credentials in front
        "ftp://admin:s3cr3t-pass@prometheus:9090/?token=t0k3n-value",
        "http://admin:s3cr3t-pass@prometheus:bad/?token=t0k3n-value",
    ],
)
def test_refused_url_is_shown_without_credentials(url: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_prometheus_url(url, "ROLLOUT_PROMETHEUS_URL")
    message = str(info.value)
    assert "s3cr3t-pass" not in message and "t0k3n-value" not in message, message
    assert "prometheus" in message  # still recognisable
