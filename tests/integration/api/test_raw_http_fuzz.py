"""Raw HTTP fuzzing of the real API process: what no client library would send, and no 5xx back.

Hypothesis writes whole requests by hand (request line, headers, body) to a socket: control
characters and Unicode digits in paths, headers and JSON fields, SIWE messages with dates at
the edge of the calendar, signed webhooks with odd timestamps, numbers too big for any field,
bodies nested past any decoder's depth, oversized and too many headers, odd methods and media
types. Every answer must be below 500 (the HTTP parser's own 400s included) and the API's log
must hold no traceback afterwards. Schemathesis (test_schemathesis.py) covers the documented
schema; this covers the bytes around it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections import Counter
from typing import Any
from urllib.parse import quote, urlsplit

from eth_account import Account
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.stack import WEBHOOK_SECRET, WEBHOOK_SOURCE, Stack
from webhooks.signing import sign

EXAMPLES = 3_000
VALID_RECIPIENT = Account.create().address

NASTY = [
    "",
    "\n",
    "\r",
    "\x00",
    "\x1b[31m",
    "\x7f",
    "\u2028",
    "\ufeff",
    "²",
    "³",
    "¹²³",
    "١٢٣",
    "𝟗",
    "9" * 40,
    "-1",
    "1e309",
    str(2**64),
    f"{2**64}-{2**64}",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "0x" + "ab" * 20 + "\n",
    "0x" + "AB" * 20,
    "0x" + "0" * 40,
    "../../etc/passwd",
    "%00",
    "default\n",
]
nasty = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=30),
    st.builds(lambda a, b: a + b, st.sampled_from(NASTY), st.text(max_size=6)),
)
# What a header value may carry on the wire: latin-1, no CR or LF (the parser would split there).
header_text = st.one_of(
    st.sampled_from([n for n in NASTY if "\r" not in n and "\n" not in n and all(ord(c) < 256 for c in n)]),
    st.text(alphabet=st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=30),
)
numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False),
    st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**4000]),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | nasty,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(nasty, children, max_size=3),
    max_leaves=8,
)
context = st.one_of(
    st.dictionaries(st.sampled_from(["class", "hours", "level", "guild", "achievements"]), json_values, max_size=4),
    json_values,
)


def _siwe(base_netloc: str, issued_at: str, chain: str, nonce: str) -> str:
    return "\n".join(
        [
            f"{base_netloc} wants you to sign in with your Ethereum account:",
            VALID_RECIPIENT,
            "",
            "",
            f"URI: http://{base_netloc}",
            "Version: 1",
            f"Chain ID: {chain}",
            f"Nonce: {nonce}",
            f"Issued At: {issued_at}",
        ]
    )


def _encode(document: Any) -> bytes:
    try:
        return json.dumps(document, ensure_ascii=False, allow_nan=False).encode("utf-8", "surrogatepass")
    except (ValueError, OverflowError):
        return b'{"recipient": 1}'


@st.composite
def requests(draw: st.DrawFn, netloc: str) -> tuple[str, str, list[tuple[str, str]], bytes]:
    """(method, target, headers, body) for one request."""
    route = draw(
        st.sampled_from(["mints", "mint", "events", "previews", "profiles", "siwe", "nonce", "webhook", "other"])
    )
    odd_method = draw(st.sampled_from([None] * 24 + ["PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "PROPFIND", "get"]))
    segment = quote(draw(nasty), safe="")
    headers: list[tuple[str, str]] = []
    body: Any = None
    if draw(st.integers(0, 9)) > 0:
        headers.append(("Authorization", draw(st.sampled_from(["{key}"] * 8 + ["Bearer pm_x", "Bearer "]))))
    if route == "mints":
        target = "/v1/mints"
        valid = draw(st.booleans())  # half the mints are well-formed but for one mangled part, or none
        recipient = VALID_RECIPIENT if valid else draw(st.one_of(nasty, numbers))
        body = {"recipient": recipient, "collection": "default" if valid else draw(st.sampled_from(["nope"]) | nasty)}
        if draw(st.booleans()):
            body["context"] = {"class": "mage", "hours": 3} if valid else draw(context)
        if draw(st.booleans()):
            headers.append(("Idempotency-Key", draw(header_text)))
    elif route == "mint":
        target = f"/v1/mints/{segment}"
    elif route == "events":
        target = f"/v1/mints/{segment}/events"
        headers.append(("Last-Event-ID", draw(header_text)))
    elif route == "previews":
        target = "/v1/previews"
        body = {"recipient": draw(st.one_of(nasty, numbers)), "context": draw(context)}
    elif route == "profiles":
        target = f"/v1/profiles/{segment}?collection={quote(draw(nasty), safe='')}"
    elif route == "siwe":
        target = "/v1/auth/siwe"
        message = _siwe(netloc, draw(nasty), draw(st.sampled_from(["31337"]) | nasty), draw(nasty))
        body = {"message": message, "signature": draw(st.sampled_from(["0x" + "00" * 65]) | nasty)}
    elif route == "nonce":
        target = "/v1/auth/nonce"
    elif route == "webhook":
        target = f"/v1/webhooks/{draw(st.sampled_from([WEBHOOK_SOURCE, WEBHOOK_SOURCE, segment]))}"
        event_type = draw(st.sampled_from(["achievement.unlocked", "other"]) | nasty)
        data = {"wallet": draw(st.one_of(nasty, st.just(VALID_RECIPIENT))), "context": draw(context)}
        body = {"id": draw(nasty), "type": event_type, "data": data}
    else:
        target = "/" + segment
    raw_body = _encode(body) if body is not None else b""
    shape = draw(st.sampled_from(["json"] * 12 + ["deep", "deep-small", "binary", "too-big"]))
    if shape == "deep":
        raw_body = b"[" * 10_000  # past any decoder's depth, within the body limit
    elif shape == "too-big":
        raw_body = b"[" * 20_000
    elif shape == "deep-small":
        raw_body = b'{"recipient":' * 1_000
    elif shape == "binary":
        raw_body = draw(st.binary(max_size=200))
    if route == "webhook":
        stamp = draw(st.one_of(st.just(str(int(time.time()))), header_text))
        headers += [("X-PersonaMint-Timestamp", stamp)]
        headers += [("X-PersonaMint-Signature", f"v1={sign(WEBHOOK_SECRET, stamp, raw_body)}")]
    content_type = draw(
        st.sampled_from(["application/json"] * 6 + ["text/plain", "application/x-www-form-urlencoded", "", "a+json"])
    )
    if content_type:
        headers.append(("Content-Type", content_type))
    extra = draw(st.sampled_from(["none"] * 16 + ["pad", "many", "odd"]))
    if extra == "pad":
        headers.append(("X-Pad", "a" * 17_000))
    elif extra == "many":
        headers += [(f"X-H{i}", "1") for i in range(101)]
    elif extra == "odd":
        headers.append((draw(st.sampled_from(["X-Odd", "X-Request-Id", "Accept"])), draw(header_text)))
    method = odd_method or ("POST" if route in ("mints", "previews", "siwe", "webhook") else "GET")
    return method, target, headers, raw_body


def _send(host: str, port: int, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> int:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    with socket.create_connection((host, port), timeout=30) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(head + body)  # refused before the body was read: the answer is still there
        answer = b""
        while b"\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0].split()
    assert len(status_line) >= 2, (method, target, answer[:200])
    return int(status_line[1])


def test_raw_http_fuzz(stack: Stack) -> None:
    # Its own API process with a tight per-recipient limit, so the few mints that get through stay few.
    name = "api-raw-fuzz"
    base_url = stack.spawn_api(name, {"PERSONAMINT_RECIPIENT_RATE_PER_MIN": "2", "PERSONAMINT_RECIPIENT_BURST": "2"})
    api_key = stack.new_key("tenant-raw-fuzz", rate_per_min=10_000_000, burst=1_000_000)
    netloc = urlsplit(base_url)
    host, port = netloc.hostname or "127.0.0.1", netloc.port or 80
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    started = time.monotonic()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(requests(netloc.netloc))
    def run(request: tuple[str, str, list[tuple[str, str]], bytes]) -> None:
        method, target, headers, body = request
        headers = [(k, f"Bearer {api_key}" if v == "{key}" else v) for k, v in headers]
        status = _send(host, port, method, target, headers, body)
        statuses[status] += 1
        if status >= 500:
            shown = [h for h in headers if h[0] not in ("X-Pad", "Authorization")][:6]
            failures.append(f"{status}: {method} {target!r} {shown} {body[:120]!r}")

    run()
    total = sum(statuses.values())
    seconds = time.monotonic() - started
    print(f"raw HTTP fuzz: {total} requests in {seconds:.1f}s; statuses {dict(sorted(statuses.items()))}")
    assert total >= EXAMPLES * 0.9, statuses
    assert not failures, "\n".join(failures[:10])
    for refused in (400, 415, 431):  # the checks and limits were reached
        assert statuses[refused] > 0, statuses
    assert statuses[202] > 0, statuses  # ...and so was the accept path

    log = (stack.services.log_dir / f"{name}.log").read_text(errors="replace")
    tracebacks = [line[:300] for line in log.splitlines() if "Traceback" in line or "unhandled error" in line]
    assert not tracebacks, "\n".join(tracebacks[:10])
