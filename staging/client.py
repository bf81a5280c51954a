"""A small typed HTTP client of the service, for tests, seeding helpers and demos."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import requests


class EngramClient:
    def __init__(self, base_url: str, admin_token: str | None = None, timeout_s: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self._token = admin_token
        self._timeout_s = timeout_s
        self._http = requests.Session()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EngramClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, *, admin: bool = False, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if admin and self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        return self._http.request(
            method, self.base_url + path, headers=headers, timeout=self._timeout_s, **kwargs
        )

    def _json(self, response: requests.Response) -> dict[str, Any]:
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def remember(self, space: str, text: str, metadata: Mapping[str, Any] | None = None) -> int:
        body: dict[str, Any] = {"text": text}
        if metadata is not None:
            body["metadata"] = dict(metadata)
        answer = self._json(self.request("POST", f"/api/v1/spaces/{space}/episodes", json=body))
        episode_id: int = answer["id"]
        return episode_id

    def recall(self, space: str, query: str, k: int = 10) -> dict[str, Any]:
        return self._json(
            self.request("POST", f"/api/v1/spaces/{space}/recall", json={"query": query, "k": k})
        )

    def status(self) -> dict[str, Any]:
        return self._json(self.request("GET", "/api/v1/dual_memory/status"))

    def integrity(self) -> dict[str, Any]:
        return self._json(self.request("GET", "/api/v1/dual_memory/integrity"))

    def features(self) -> dict[str, Any]:
        return self._json(self.request("GET", "/api/v1/admin/features", admin=True))

    def set_flags(
        self,
        changes: Mapping[str, bool | float] | None = None,
        /,
        *,
        wait: bool = True,
        **named: bool | float,
    ) -> dict[str, Any]:
        """PUT flag changes; with ``wait``, return once /status shows the service uses them."""
        changes = {**(changes or {}), **named}
        answer = self._json(
            self.request(
                "PUT",
                "/api/v1/admin/features",
                admin=True,
                json={"flags": changes, "reason": "staging client", "actor": "staging.client"},
            )
        )
        if wait:
            deadline = time.monotonic() + 5.0
            expected = {
                name: flag["value"] for name, flag in answer["flags"].items() if name in changes
            }
            while time.monotonic() < deadline:
                seen = self.status()["flags"]
                if all(seen.get(k) == v for k, v in expected.items()):
                    break
                time.sleep(0.05)
            else:
                raise TimeoutError(f"service did not pick up {expected} within 5 s")
        return answer

    def metric(self, name: str, **labels: str) -> float:
        """One sample from the service's own /metrics (not through Prometheus)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = self.request("GET", "/metrics").text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        raise KeyError(f"no sample {name}{labels}")

    def chaos(self, **spec: float) -> dict[str, Any]:
        return self._json(self.request("POST", "/api/v1/admin/chaos", admin=True, json=spec))

    def clear_chaos(self) -> dict[str, Any]:
        return self._json(self.request("DELETE", "/api/v1/admin/chaos", admin=True))
