"""HTTP API: status codes, bad input never stored, auth on the admin endpoints."""

from __future__ import annotations

import json
import uuid

import pytest

from staging.client import EngramClient
from staging.stack import Stack


def _space() -> str:
    return f"api-{uuid.uuid4().hex[:10]}"


def test_remember_then_recall_returns_the_episode_with_provenance(engram: EngramClient) -> None:
    space = _space()
    episode_id = engram.remember(space, "garlic tomato basil simmer", {"source": "test"})
    engram.remember(space, "telescope nebula comet orbit")
    answer = engram.recall(space, "tomato basil", k=1)
    assert answer["mode"] == "episodic" and answer["group"] == "control"
    [hit] = answer["results"]
    assert hit["id"] == episode_id
    assert hit["metadata"] == {"source": "test"}
    assert hit["provenance"] == "episode"
    assert 0.3 < hit["confidence"] <= 1.0


def test_batch_remember_is_all_or_nothing(engram: EngramClient) -> None:
    space = _space()
    ok = engram.request(
        "POST",
        f"/api/v1/spaces/{space}/episodes",
        json={"episodes": [{"text": "one thing"}, {"text": "another thing"}]},
    )
    assert ok.status_code == 201 and len(ok.json()["ids"]) == 2
    before = engram.integrity()["spaces"][space]
    bad = engram.request(
        "POST",
        f"/api/v1/spaces/{space}/episodes",
        json={"episodes": [{"text": "fine"}, {"text": ""}]},
    )
    assert bad.status_code == 400
    assert "episodes[1].text" in bad.json()["error"]
    assert engram.integrity()["spaces"][space] == before


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "valid JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps({"text": ""}).encode(), "non-empty"),
        (json.dumps({"text": 5}).encode(), "non-empty string"),
        (json.dumps({"text": "x" * 9000}).encode(), "longer than"),
        (json.dumps({"text": "a", "metadata": [1]}).encode(), "metadata must be an object"),
        (json.dumps({"text": "a", "colour": "red"}).encode(), "unknown fields colour"),
        (json.dumps({"episodes": []}).encode(), "non-empty list"),
        (b'{"text": "a", "metadata": {"x": NaN}}', "NaN"),
    ],
)
def test_bad_remember_input_is_a_400_and_creates_nothing(
    engram: EngramClient, body: bytes, fragment: str
) -> None:
    space = _space()
    response = engram.request("POST", f"/api/v1/spaces/{space}/episodes", data=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert space not in engram.integrity()["spaces"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"query": ""}, "non-empty"),
        ({"query": "a", "k": 0}, "k must be"),
        ({"query": "a", "k": 101}, "k must be"),
        ({"query": "a", "k": True}, "k must be"),
        ({"query": "a", "k": "5"}, "k must be"),
        ({"query": "!!! ???"}, "no words"),
        ({"q": "a"}, "unknown fields"),
    ],
)
def test_bad_recall_input_is_a_400(
    engram: EngramClient, body: dict[str, object], fragment: str
) -> None:
    response = engram.request("POST", f"/api/v1/spaces/{_space()}/recall", json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def test_invalid_space_name_and_unknown_route_answer_json(engram: EngramClient) -> None:
    bad = engram.request("POST", "/api/v1/spaces/..%2Fetc/recall", json={"query": "a"})
    assert bad.status_code in (400, 404)
    assert "error" in bad.json()
    missing = engram.request("GET", "/api/v1/nothing-here")
    assert missing.status_code == 404 and "error" in missing.json()
    wrong_method = engram.request("GET", f"/api/v1/spaces/{_space()}/recall")
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()


def test_recall_on_an_empty_space_returns_no_results(engram: EngramClient) -> None:
    answer = engram.recall(_space(), "anything at all")
    assert answer["results"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/admin/features"),
        ("PUT", "/api/v1/admin/features"),
        ("GET", "/api/v1/admin/chaos"),
        ("POST", "/api/v1/admin/chaos"),
        ("DELETE", "/api/v1/admin/chaos"),
    ],
)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token", "Basic abc"])
def test_admin_endpoints_need_the_bearer_token(
    staging_stack: Stack, method: str, path: str, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    with EngramClient(staging_stack.engram_url) as anonymous:
        response = anonymous.request(
            method, path, headers=headers, json={"flags": {"dual_memory_types": True}}
        )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert staging_stack.admin_token not in response.text


def test_features_get_and_put_follow_the_shared_contract(
    engram: EngramClient, staging_stack: Stack
) -> None:
    state = engram.features()["flags"]
    assert state == {
        "blended_recall": {"type": "cohort", "value": 0.0},
        "concept_formation": {"type": "boolean", "value": False},
        "dual_memory_types": {"type": "boolean", "value": False},
        "semantic_weight": {"type": "number", "value": 0.3},
    }
    answer = engram.set_flags(blended_recall=25, semantic_weight=0.5, wait=False)
    assert answer["flags"]["blended_recall"] == {"type": "cohort", "value": 25.0}
    assert answer["flags"]["semantic_weight"] == {"type": "number", "value": 0.5}
    on_disk = json.loads(staging_stack.flags_path.read_text())
    assert on_disk["flags"]["blended_recall"]["targeting"]["fractional"][1] == ["on", 25]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"flags": {"no_such_flag": True}}, "unknown flag"),
        ({"flags": {"dual_memory_types": 25}}, "boolean"),
        ({"flags": {"blended_recall": 101}}, "outside 0..100"),
        ({"flags": {"blended_recall": -1}}, "outside 0..100"),
        ({"flags": {"semantic_weight": "high"}}, "number"),
        ({"flags": {}}, "non-empty"),
        ({"flags": {"dual_memory_types": True}, "reason": 5}, "reason must be a string"),
    ],
)
def test_bad_flag_changes_are_400_and_leave_the_file_alone(
    engram: EngramClient, staging_stack: Stack, body: dict[str, object], fragment: str
) -> None:
    before = staging_stack.flags_path.read_bytes()
    response = engram.request("PUT", "/api/v1/admin/features", admin=True, json=body)
    assert response.status_code == 400
    assert fragment in response.json()["error"]
    assert staging_stack.flags_path.read_bytes() == before


def test_health_and_metrics_endpoints(engram: EngramClient) -> None:
    assert engram.request("GET", "/health").json() == {"status": "ok"}
    text = engram.request("GET", "/metrics").text
    assert "# TYPE engram_recall_duration_seconds histogram" in text
    assert "process_resident_memory_bytes" in text
