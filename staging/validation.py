"""Request validation: bad input becomes a 4xx with a JSON error before anything is stored."""

from __future__ import annotations

import json
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.requests import Request

from staging.memory import SPACE_NAME

MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_TEXT_CHARS = 8_192
MAX_QUERY_CHARS = 2_048
MAX_METADATA_BYTES = 4_096
MAX_BATCH = 1_000
MAX_K = 100
DEFAULT_K = 10


def bad_request(message: str) -> HTTPException:
    return HTTPException(status_code=400, detail=message)


def space_name(request: Request) -> str:
    name = str(request.path_params["space"])
    if not SPACE_NAME.match(name):
        raise bad_request("space must match [A-Za-z0-9][A-Za-z0-9_-]{0,63}")
    return name


async def json_object(request: Request) -> dict[str, object]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(status_code=413, detail=f"body larger than {MAX_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise HTTPException(status_code=413, detail=f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise bad_request("body must be valid JSON") from None
    if not isinstance(body, dict):
        raise bad_request("body must be a JSON object")
    return body


def _reject_unknown(body: dict[str, object], allowed: set[str], where: str) -> None:
    unknown = set(body) - allowed
    if unknown:
        raise bad_request(f"{where}: unknown fields {', '.join(sorted(unknown))}")


def _episode(item: object, where: str) -> tuple[str, str]:
    if not isinstance(item, dict):
        raise bad_request(f"{where} must be an object")
    _reject_unknown(item, {"text", "metadata"}, where)
    text = item.get("text")
    if not isinstance(text, str) or not text.strip():
        raise bad_request(f"{where}.text must be a non-empty string")
    if len(text) > MAX_TEXT_CHARS:
        raise bad_request(f"{where}.text is longer than {MAX_TEXT_CHARS} characters")
    if "\x00" in text:
        raise bad_request(f"{where}.text contains a NUL character")
    metadata = item.get("metadata", {})
    if not isinstance(metadata, dict):
        raise bad_request(f"{where}.metadata must be an object")
    try:
        metadata_json = json.dumps(metadata, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except ValueError:
        raise bad_request(f"{where}.metadata must be plain JSON (no NaN/Infinity)") from None
    if len(metadata_json.encode()) > MAX_METADATA_BYTES:
        raise bad_request(f"{where}.metadata is larger than {MAX_METADATA_BYTES} bytes")
    return text, metadata_json


def episodes(body: dict[str, object]) -> tuple[list[tuple[str, str]], bool]:
    """(text, metadata JSON) pairs and whether the body was a batch; validates every item first."""
    if "episodes" in body:
        _reject_unknown(body, {"episodes"}, "body")
        items = body["episodes"]
        if not isinstance(items, list) or not items:
            raise bad_request("episodes must be a non-empty list")
        if len(items) > MAX_BATCH:
            raise bad_request(f"at most {MAX_BATCH} episodes per request")
        return [_episode(item, f"episodes[{i}]") for i, item in enumerate(items)], True
    return [_episode(body, "body")], False


@dataclass(frozen=True)
class RecallRequest:
    query: str
    k: int


def recall(body: dict[str, object]) -> RecallRequest:
    _reject_unknown(body, {"query", "k"}, "body")
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise bad_request("query must be a non-empty string")
    if len(query) > MAX_QUERY_CHARS:
        raise bad_request(f"query is longer than {MAX_QUERY_CHARS} characters")
    k = body.get("k", DEFAULT_K)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise bad_request(f"k must be an integer within 1..{MAX_K}")
    return RecallRequest(query=query, k=k)
