"""Communication-plan hook: a Slack-compatible webhook on ABORT and on rollback.

Notifying is best effort by design: :func:`notify_webhook` returns an error message instead of
raising, so a broken webhook can never block or undo a rollback.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit


def build_message(
    *, phase: str | None, reason: str, action: str, who: str, environment: str | None = None
) -> dict[str, Any]:
    """Slack-compatible payload (``text`` for every client, plus the fields as JSON keys)."""
    where = f" in {environment}" if environment else ""
    text = f"[rollout] {phase or 'rollout'}{where}: {action} by {who}. Reason: {reason}"
    return {
        "text": text,
        "phase": phase,
        "environment": environment,
        "reason": reason,
        "action": action,
        "who": who,
    }


def _where(url: str) -> str:
    # Webhook URLs embed their secret in the path (hooks.slack.com/services/T/B/XXXX).
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")


def notify_webhook(url: str, payload: Mapping[str, Any], *, timeout_s: float = 5.0) -> str | None:
    """POST ``payload`` as JSON; None on a 2xx answer, else a one-line error (URL path hidden)."""
    import requests

    where = _where(url)
    try:
        response = requests.post(url, json=dict(payload), timeout=timeout_s)
    except requests.Timeout:
        return f"webhook {where}: no answer within {timeout_s:g} s"
    except requests.RequestException as exc:
        return f"webhook {where}: {type(exc).__name__}"
    if 200 <= response.status_code < 300:
        return None
    return f"webhook {where}: HTTP {response.status_code} {response.text[:200]!r}"
