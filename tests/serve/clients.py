"""Clients shaped like the controllers that call ``rollout serve``, from their documented contracts.

- Argo Rollouts' Web metric provider: a non-2xx answer (or a timeout) is an Error; the value at
  ``jsonPath`` is ``result``; ``successCondition`` true -> Successful, ``failureCondition`` true
  -> Failed, neither -> Inconclusive (the rollout pauses).
- Flagger webhooks: POST ``{"name", "namespace", "phase", "checksum", "metadata"}``; a status
  above 202 fails the hook (204 too), within the 10 s default timeout. The rollback hook is
  polled: 200..202 means "roll back now".
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

FLAGGER_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    url: str,
    *,
    method: str = "POST",
    body: bytes | None = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 60.0,
) -> Answer:
    """One HTTP request; any status comes back as an Answer (urllib raises on >= 400)."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, method=method, headers=sent)
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as response:
            return Answer(response.status, response.read())
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, exc.read())


class ArgoWebMetric:
    """An AnalysisTemplate metric with provider.web, jsonPath {$.decision},
    successCondition result == "GO", failureCondition result == "ABORT"."""

    def __init__(self, url: str, token: str | None, body: dict[str, Any] | None = None) -> None:
        self.url = url
        self.token = token
        self.body = body

    def measure(self) -> tuple[str, Any]:
        """(phase of the measurement, result): Successful, Failed, Inconclusive or Error."""
        data = json.dumps(self.body).encode() if self.body is not None else None
        try:
            answer = request(self.url, body=data, token=self.token)
        except OSError as exc:
            return "Error", str(exc)
        if not 200 <= answer.status < 300:
            return "Error", answer.status
        try:
            result = answer.json()["decision"]  # jsonPath "{$.decision}"
        except (ValueError, KeyError) as exc:
            return "Error", str(exc)
        if result == "GO":
            return "Successful", result
        if result == "ABORT":
            return "Failed", result
        return "Inconclusive", result


class FlaggerWebhook:
    """One webhook of a Canary's analysis (confirm-*, or rollback)."""

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token

    def call(self, flagger_phase: str = "Progressing") -> Answer:
        payload = {
            "name": "engram",
            "namespace": "memory",
            "phase": flagger_phase,
            "checksum": "85d557f47b",
            "metadata": {"type": "confirm-promotion", "cmd": "ignored by the server"},
        }
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return request(
            self.url,
            body=json.dumps(payload).encode(),
            headers=headers,
            timeout_s=FLAGGER_TIMEOUT_S,
        )

    def passes(self) -> bool:
        """confirm-* hooks: Flagger goes ahead only on a status of 202 or less."""
        return self.call().status <= 202

    def says_roll_back(self) -> bool:
        return 200 <= self.call().status <= 202
