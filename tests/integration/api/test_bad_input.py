"""Bad input gets a 4xx problem document with a stable code, never a 500."""

from __future__ import annotations

import pytest

from tests.support.stack import Stack

GOOD = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def assert_problem(response, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["type"].endswith(code)
    assert body["detail"]


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"recipient": "0x1234"}, "invalid_address"),
        ({"recipient": "not-an-address-at-all-but-long-enough-to-be-42c"}, "invalid_address"),
        ({"recipient": "0x70997970C51812dc3A010C7d01b50e0d17dc79c8"}, "invalid_address_checksum"),
        ({"recipient": "0x" + "0" * 40}, "zero_address"),
        ({"recipient": 12345}, "invalid_request"),
        ({}, "invalid_request"),
        ({"recipient": GOOD, "surprise": 1}, "invalid_request"),
        ({"recipient": GOOD, "collection": "nope"}, "unknown_collection"),
        ({"recipient": GOOD, "collection": "../../etc"}, "invalid_request"),
    ],
)
def test_bad_mint_requests(stack: Stack, payload: dict[str, object], code: str) -> None:
    with stack.client() as client:
        response = client.post("/v1/mints", json=payload)
    assert_problem(response, 404 if code == "unknown_collection" else 400, code)


def test_missing_non_json_and_oversized_bodies(stack: Stack) -> None:
    with stack.client() as client:
        assert_problem(client.post("/v1/mints"), 400, "invalid_request")
        assert_problem(
            client.post("/v1/mints", content=b"{not json", headers={"content-type": "application/json"}),
            400,
            "invalid_json",
        )
        huge = {"recipient": GOOD, "context": {"blob": "x" * 100_000}}
        assert_problem(client.post("/v1/mints", json=huge), 413, "body_too_large")


def test_unknown_job_and_auth(stack: Stack) -> None:
    with stack.client() as client:
        assert_problem(client.get("/v1/mints/doesnotexist"), 404, "job_not_found")
        assert_problem(client.get("/v1/mints/" + "x" * 300), 404, "job_not_found")
    with stack.client(api_key="") as anonymous:
        assert_problem(anonymous.post("/v1/mints", json={"recipient": GOOD}), 401, "missing_api_key")
    with stack.client(api_key="pm_wrong_key") as wrong:
        assert_problem(wrong.post("/v1/mints", json={"recipient": GOOD}), 401, "invalid_api_key")
        assert_problem(wrong.get("/v1/mints/abc"), 401, "invalid_api_key")


def test_bad_idempotency_key_and_cid(stack: Stack) -> None:
    with stack.client() as client:
        response = client.post("/v1/mints", json={"recipient": GOOD}, headers={"Idempotency-Key": "a b"})
        assert_problem(response, 400, "invalid_idempotency_key")
        assert_problem(client.get("/ipfs/not-a-cid"), 400, "invalid_cid")
        missing = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        assert_problem(client.get(f"/ipfs/{missing}"), 404, "cid_not_found")


def test_health_and_schema(stack: Stack) -> None:
    with stack.client(api_key="") as client:
        assert client.get("/health").json() == {"status": "ok"}
        schema = client.get("/schema/openapi.json").json()
        assert "/v1/mints" in schema["paths"]
