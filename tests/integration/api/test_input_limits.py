"""Input that used to reach a 500 or slip through: each is now a precise 4xx (or a retryable 503).

The collection's `[context]` schema, addresses with a trailing newline, SIWE dates at the edge
of the calendar, Unicode digits in a webhook timestamp, a chain that is down, bodies that are
not JSON, and request headers of any size or count.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from eth_account import Account

from devstack.anvil import free_port
from devstack.local import PREVIEW_WORKER_ENV
from tests.support.rpc_proxy import proxy_in_thread
from tests.support.siwe import siwe_text
from tests.support.stack import OPS_TOKEN, WEBHOOK_SECRET, WEBHOOK_SOURCE, Stack
from webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, signature_headers

JSON = {"Content-Type": "application/json"}


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    assert body["detail"]
    return body


# ---- the collection's [context] schema (collections/default.toml) ----


@pytest.mark.parametrize(
    ("context", "field", "rule"),
    [
        ({"class": "hacker"}, "context.class", "enum"),
        ({"hours": "lots"}, "context.hours", "type"),
        ({"hours": -1}, "context.hours", "min"),
        ({"level": 10**30}, "context.level", "max"),
        ({"level": 1001}, "context.level", "max"),
        ({"achievements": ["x" * 49]}, "context.achievements", "max_length"),
        ({"achievements": ["a"] * 65}, "context.achievements", "max_items"),
        ({"achievements": [7]}, "context.achievements", "type"),
        ({"achievements": "speedrun"}, "context.achievements", "type"),
        ({"guild": 5}, "context.guild", "type"),
        ({"surprise": 1}, "context.surprise", "unknown_key"),
        ({"guild": "x" * 3000}, "context", "max_bytes"),
    ],
)
def test_context_outside_the_collection_schema_is_refused(
    stack: Stack, context: dict[str, Any], field: str, rule: str
) -> None:
    with stack.client() as client:
        for path in ("/v1/mints", "/v1/previews"):
            body = assert_problem(
                client.post(path, json={"recipient": Account.create().address, "context": context}),
                400,
                "invalid_context",
            )
            # The problem names the field and the rule, in its sentence and as members.
            assert (body["field"], body["rule"]) == (field, rule), body
            assert (field.removeprefix("context.") if rule != "max_bytes" else "2048") in body["detail"]


def test_context_the_schema_allows_is_accepted(stack: Stack) -> None:
    context = {"achievements": ["speedrun"], "hours": 500, "class": "mage", "level": 3, "guild": "owls"}
    with stack.client() as client:
        response = client.post("/v1/mints", json={"recipient": Account.create().address, "context": context})
        assert response.status_code == 202, response.text
        assert client.post("/v1/mints", json={"recipient": Account.create().address, "context": {}}).status_code == 202


def test_context_moves_the_preview_and_an_empty_one_is_no_context(stack: Stack) -> None:
    wallet = Account.create().address
    with stack.client() as client:
        plain = client.post("/v1/previews", json={"recipient": wallet})
        assert plain.status_code == 200, plain.text
        for empty in ({}, {"achievements": []}, {"guild": "", "achievements": []}):
            same = client.post("/v1/previews", json={"recipient": wallet, "context": empty}).json()
            assert (same["style"], same["pixel_sha256"]) == (plain.json()["style"], plain.json()["pixel_sha256"])
        moved = client.post("/v1/previews", json={"recipient": wallet, "context": {"class": "bard", "guild": "owls"}})
        assert moved.status_code == 200, moved.text
        style = moved.json()["style"]
        assert style["motif"] == "flow"
        assert len(style["seal"]) == 8
        assert "seal" not in plain.json()["style"]
        assert moved.json()["pixel_sha256"] != plain.json()["pixel_sha256"]


def _post_event(client: httpx.Client, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    signed = headers if headers is not None else signature_headers(WEBHOOK_SECRET, body)
    return client.post(f"/v1/webhooks/{WEBHOOK_SOURCE}", content=body, headers={**signed, **JSON})


def test_inbound_webhook_context_is_checked_against_the_schema(stack: Stack) -> None:
    event = {
        "id": "evt-bad-context",
        "type": "achievement.unlocked",
        "data": {"wallet": Account.create().address, "context": {"class": "hacker"}},
    }
    with stack.client(api_key="") as client:
        assert_problem(_post_event(client, json.dumps(event).encode()), 400, "invalid_context")


# ---- input that reached a 500 ----


def test_address_with_a_trailing_newline_is_refused(stack: Stack) -> None:
    lower = "0x" + "ab" * 20
    with stack.client() as client:
        assert_problem(client.get(f"/v1/profiles/{lower}%0A"), 400, "invalid_address")
        assert_problem(client.post("/v1/mints", json={"recipient": lower + "\n"}), 400, "invalid_address")
        assert_problem(client.post("/v1/previews", json={"recipient": lower + "\n"}), 400, "invalid_address")


@pytest.mark.parametrize("issued_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_siwe_dates_at_the_edge_of_the_calendar_are_refused(stack: Stack, issued_at: str) -> None:
    wallet = Account.create()
    with stack.client(api_key="") as client:
        text = siwe_text(client, stack.base_url, stack.chain_id, wallet.address)
        lines = [f"Issued At: {issued_at}" if line.startswith("Issued At: ") else line for line in text.split("\n")]
        response = client.post("/v1/auth/siwe", json={"message": "\n".join(lines), "signature": "0x" + "00" * 65})
        assert_problem(response, 400, "invalid_siwe_message")


# Header bytes arrive as latin-1, so the Unicode digits that can reach the check are ¹ ² ³.
@pytest.mark.parametrize("stamp", ["²", "17³"])
def test_webhook_timestamp_with_unicode_digits_is_refused(stack: Stack, stamp: str) -> None:
    body = json.dumps({"id": "evt-digits", "type": "achievement.unlocked", "data": {}}).encode()
    headers = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: f"v1={sign(WEBHOOK_SECRET, stamp, body)}", **JSON}
    raw = _raw_request(stack.base_url, "POST", f"/v1/webhooks/{WEBHOOK_SOURCE}", headers, body)
    assert raw.startswith(b"HTTP/1.1 401"), raw[:300]
    assert b'"code":"invalid_signature"' in raw


def test_json_nested_past_the_decoders_depth_is_invalid_json(stack: Stack) -> None:
    # Within the body limit, past any JSON decoder's recursion limit.
    nested = b"[" * 5_000 + b"]" * 5_000
    in_context = b'{"recipient": "%s", "context": {"a": %s}}' % (Account.create().address.encode(), nested)
    with stack.client() as client:
        for path in ("/v1/mints", "/v1/previews"):
            assert_problem(client.post(path, content=b"[" * 10_000, headers=JSON), 400, "invalid_json")
            # An array where an object goes is refused before its depth matters; a deep context by its depth.
            assert_problem(client.post(path, content=nested, headers=JSON), 400, "invalid_request")
            assert_problem(client.post(path, content=in_context, headers=JSON), 400, "invalid_context")
        assert_problem(_post_event(client, b"[" * 10_000), 400, "invalid_json")
        for body in (nested, in_context):
            # Past the decoder's recursion limit (invalid_json) or within it (a process that raised
            # the limit, as py_ecc does on import): not an event object either way.
            response = _post_event(client, body)
            assert response.status_code == 400, response.text
            assert response.json()["code"] in ("invalid_json", "invalid_webhook_event")


def test_profiles_and_previews_while_the_chain_is_down(stack: Stack) -> None:
    # An API process whose JSON-RPC endpoint refuses every connection (profiles are read there);
    # previews are profiled in the previewer: in place of the stack's own, one whose RPC goes
    # through a proxy that starts answering every call 502 once it is up.
    base_url = stack.spawn_api("api-no-chain", {"PERSONAMINT_RPC_URL": f"http://127.0.0.1:{free_port()}"})
    services = stack.services
    services.kill("previewer", signal.SIGTERM)
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    try:
        with contextlib.ExitStack() as cleanup:
            proxy = cleanup.enter_context(proxy_in_thread(stack.anvil.url))
            services.spawn("previewer-chain-down", "worker", {**PREVIEW_WORKER_ENV, "PERSONAMINT_RPC_URL": proxy.url})
            cleanup.callback(services.kill, "previewer-chain-down", signal.SIGTERM)
            with httpx.Client(base_url=stack.base_url, headers=headers, timeout=90) as client:
                # The precondition: the new previewer has started and reads the chain. A preview
                # asked before it takes jobs may time out (503, retry), as any caller's would.
                deadline = time.monotonic() + 150
                up = client.post("/v1/previews", json={"recipient": Account.create().address})
                while up.status_code == 503 and time.monotonic() < deadline:
                    up = client.post("/v1/previews", json={"recipient": Account.create().address})
                assert up.status_code == 200, up.text
            proxy.faults.http_502_rate = 1.0
            with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
                wallet = Account.create().address
                for response in (
                    client.get(f"/v1/profiles/{wallet}"),
                    client.post("/v1/previews", json={"recipient": wallet}),
                ):
                    assert_problem(response, 503, "history_unavailable")
                    assert int(response.headers["retry-after"]) >= 1
    finally:
        services.spawn("previewer", "worker", PREVIEW_WORKER_ENV)
        # The next test's preview must not wait out the new previewer's start.
        with httpx.Client(base_url=stack.base_url, headers=headers, timeout=90) as client:
            deadline = time.monotonic() + 150
            while client.post("/v1/previews", json={"recipient": Account.create().address}).status_code == 503:
                assert time.monotonic() < deadline, "the restarted previewer takes no previews"


# ---- media types ----


def test_every_body_route_refuses_what_is_not_json(stack: Stack) -> None:
    wallet = Account.create().address
    body = json.dumps({"recipient": wallet, "message": "x", "signature": "0x"}).encode()
    with stack.client() as client:
        schema = client.get("/schema/openapi.json").json()
        posts = [path for path, item in schema["paths"].items() if "post" in item]
        assert len(posts) >= 5, posts
        for path in posts:
            url = path.replace("{source}", WEBHOOK_SOURCE).replace("{delivery_id}", "d1")
            signed = signature_headers(WEBHOOK_SECRET, body)
            for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx", None):
                headers = {**signed, **({"Content-Type": content_type} if content_type else {})}
                response = client.post(url, content=body, headers=headers)
                assert_problem(response, 415, "unsupported_media_type")
        # JSON spelled any legal way is still JSON.
        mint = json.dumps({"recipient": wallet}).encode()
        for content_type in ("application/json; charset=utf-8", "APPLICATION/JSON", "application/merge-patch+json"):
            response = client.post("/v1/mints", content=mint, headers={"Content-Type": content_type})
            assert response.status_code == 202, (content_type, response.text)
        assert_problem(
            client.post("/v1/mints", content=mint, headers={"Content-Type": "application/json; charset=latin-1"}),
            415,
            "unsupported_media_type",
        )
    with stack.client(api_key="") as anonymous:
        # Who is asking comes first: a bad key is a 401 whatever the body's type.
        text = {"Content-Type": "text/plain"}
        assert_problem(anonymous.post("/v1/mints", content=body, headers=text), 401, "missing_api_key")


# ---- request headers ----


def _raw_request(base_url: str, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    """One HTTP/1.1 request written by hand (what no client library would send), the raw answer back."""
    netloc = urlsplit(base_url)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {netloc.netloc}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection((netloc.hostname or "127.0.0.1", netloc.port or 80), timeout=30) as sock:
        sock.sendall(head + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_oversized_and_too_many_headers_are_431(stack: Stack) -> None:
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    big = _raw_request(stack.base_url, "GET", "/health", {**auth, "X-Pad": "a" * 17_000})
    assert big.startswith(b"HTTP/1.1 431"), big[:300]
    assert b"request_headers_too_large" in big
    many = _raw_request(stack.base_url, "GET", "/health", {**auth, **{f"X-H{i}": "1" for i in range(101)}})
    assert many.startswith(b"HTTP/1.1 431"), many[:300]
    assert b"too_many_request_headers" in many
    fine = _raw_request(stack.base_url, "GET", "/health", {**auth, **{f"X-H{i}": "a" * 100 for i in range(90)}})
    assert fine.startswith(b"HTTP/1.1 200"), fine[:300]


def test_metrics_method_label_is_bounded(stack: Stack) -> None:
    # Methods the HTTP parser passes on (httptools knows the WebDAV ones; h11 takes any token).
    for method in ("PROPFIND", "MKCOL", "FROB"):
        _raw_request(stack.base_url, method, "/health", {})
    with stack.client(OPS_TOKEN) as client:  # /metrics needs the ops credential
        metrics = client.get("/metrics").text
    methods = set(re.findall(r'^pm_http_requests_total\{method="([^"]*)"', metrics, re.MULTILINE))
    assert "OTHER" in methods, methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "OTHER"}
