"""The raw parsers fuzzed directly: every input is either accepted or refused with a 4xx ApiError.

SIWE messages (valid ones with one line mangled, and junk), RFC 3339 dates at the edge of the
calendar, inbound webhook signatures, timestamps and bodies, addresses, Idempotency-Keys,
Content-Types, Last-Event-IDs, app context against the default collection's schema, and the
request-header limits. Anything else escaping (ValueError, OverflowError, RecursionError…) is a
500 waiting to happen. The one test runs every property and prints the number of cases.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.errors import ApiError
from api.events import parse_last_event_id
from api.inbound import parse_inbound, verify_signature
from api.request_limits import HeaderLimits
from api.siwe import SiweMessage, SiwePolicy, parse_datetime, signature_bytes
from api.validation import check_context, check_json_media_type, parse_idempotency_key, parse_recipient
from config.settings import WebhookSource
from personalization.style import load_style_dna
from webhooks.signing import sign

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = load_style_dna(ROOT / "collections" / "default.toml").context_schema
SOURCE = WebhookSource.model_validate(
    {"secret": "whsec_fuzz", "tenant": "game", "events": {"achievement.unlocked": {"collection": "default"}}}
)
POLICY = SiwePolicy(domain="127.0.0.1:8000", uri="http://127.0.0.1:8000", chain_id=31337)
NOW = 1_767_000_000.0
MIN_CASES = 5_000

# What broke parsers before: control characters, newlines at the end, digits of other scripts,
# dates at the edge of the calendar, numbers too big for any field.
NASTY = [
    "",
    "\n",
    "\r\n",
    "\x00",
    "\x7f",
    "\u2028",
    "\ufeff",
    "²",
    "³",
    "¹²",
    "١٢٣",
    "𝟗",
    "9" * 30,
    "-1",
    "1e309",
    str(2**64),
    str(2**64 + 1) + "-0",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59.999999999-23:59",
    "0000-00-00T00:00:00Z",
    "2026-02-30T25:61:61Z",
    "0x" + "ab" * 20 + "\n",
    "0x" + "AB" * 20,
    "0x" + "0" * 40,
    "0x" + "f" * 130 + "\n",
]
nasty = st.one_of(
    st.sampled_from(NASTY),
    st.text(max_size=40),
    st.builds(lambda a, b: a + b, st.sampled_from(NASTY), st.text(max_size=8)),
    st.builds(
        lambda a, b: a + b, st.text(alphabet="0123456789abcdefABCDEFx-:TZ+.", max_size=50), st.sampled_from(NASTY)
    ),
)
latin1 = st.text(alphabet=st.characters(max_codepoint=255), max_size=40)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | nasty,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(nasty, children, max_size=4),
    max_leaves=12,
)

SIWE_LINES = [
    "127.0.0.1:8000 wants you to sign in with your Ethereum account:",
    "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2",
    "",
    "Sign in to Persona Mint.",
    "",
    "URI: http://127.0.0.1:8000/login",
    "Version: 1",
    "Chain ID: 31337",
    "Nonce: abcdef0123456789",
    "Issued At: 2026-01-02T03:04:05Z",
    "Expiration Time: 2026-01-02T04:04:05.000Z",
    "Not Before: 2026-01-02T03:04:05Z",
    "Request ID: req-1",
    "Resources:",
    "- https://example.com/a",
]
PREFIXES = ["", "URI: ", "Chain ID: ", "Nonce: ", "Issued At: ", "Expiration Time: ", "Not Before: ", "Request ID: "]


def _mangled_siwe(index: int, prefix: str, value: str, trailing: str) -> str:
    lines = list(SIWE_LINES)
    lines[index % len(lines)] = prefix + value
    return "\n".join(lines) + trailing


siwe_texts = st.one_of(
    st.builds(
        _mangled_siwe,
        st.integers(0, len(SIWE_LINES) - 1),
        st.sampled_from(PREFIXES),
        nasty,
        st.sampled_from(["", "\n", "\r", " "]),
    ),
    st.text(max_size=300),
)


def _refused_with_4xx(call: Callable[[], object]) -> None:
    try:
        call()
    except ApiError as exc:
        refusal = (exc.status, exc.code)
    else:
        return
    assert 400 <= refusal[0] < 500, refusal


def _siwe(text: str) -> None:
    def parse_and_check() -> None:
        message = SiweMessage.parse(text)
        POLICY.check(message, NOW)
        SiweMessage.parse(message.to_text())

    _refused_with_4xx(parse_and_check)


def _siwe_date(value: str) -> None:
    _refused_with_4xx(lambda: parse_datetime(value, "Issued At"))


def _signature(timestamp: str, signed: bool, other: str, body: bytes) -> None:
    signature = f"v1={sign(SOURCE.secret.get_secret_value(), timestamp, body)}" if signed else other
    _refused_with_4xx(lambda: verify_signature("whsec_fuzz", timestamp, signature, body, tolerance_s=300, now=NOW))


def _inbound(body: bytes) -> None:
    _refused_with_4xx(lambda: parse_inbound(SOURCE, body))


def _event(value: Any, event_type: str) -> None:
    event = {"id": "evt-1", "type": event_type, "data": value}
    _inbound(json.dumps(event).encode())


def _small_inputs(address: str, key: str, content_type: str, last_event_id: str, signature: str) -> None:
    _refused_with_4xx(lambda: parse_recipient(address))
    _refused_with_4xx(lambda: parse_idempotency_key(key))
    _refused_with_4xx(lambda: check_json_media_type(content_type, has_body=True))
    _refused_with_4xx(lambda: parse_last_event_id(last_event_id))
    _refused_with_4xx(lambda: signature_bytes(signature))


def _context(context: Any) -> None:
    if isinstance(context, dict):
        _refused_with_4xx(lambda: check_context(context, SCHEMA))


def _headers(headers: list[tuple[bytes, bytes]]) -> None:
    sent: list[dict[str, Any]] = []
    reached: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    guard = HeaderLimits(app, max_bytes=16_384, max_count=100)
    asyncio.run(guard({"type": "http", "method": "GET", "path": "/", "headers": headers}, receive, send))  # type: ignore[arg-type]
    over = len(headers) > 100 or sum(len(k) + len(v) for k, v in headers) > 16_384
    assert bool(reached) is not over
    if over:
        assert sent[0]["status"] == 431


header_lists = st.lists(
    st.tuples(st.binary(min_size=1, max_size=20), st.binary(max_size=400)), max_size=130
) | st.builds(
    lambda count, size: [(b"x-h%d" % i, b"a" * size) for i in range(count)],
    st.integers(0, 120),
    st.integers(0, 400),
)

# (property, its strategies, examples)
PROPERTIES: list[tuple[Callable[..., None], tuple[st.SearchStrategy[Any], ...], int]] = [
    (_siwe, (siwe_texts,), 1800),
    (_siwe_date, (nasty,), 600),
    (_signature, (latin1 | nasty, st.booleans(), latin1, st.binary(max_size=64)), 700),
    (_inbound, (st.binary(max_size=200) | st.sampled_from([b"[" * 5000, b'{"id":' * 3000, b"1" * 5000]),), 500),
    (_event, (json_values, st.sampled_from(["achievement.unlocked", "other"])), 600),
    (_small_inputs, (nasty, latin1 | nasty, latin1 | nasty, nasty, nasty), 900),
    (
        _context,
        (
            json_values
            | st.dictionaries(st.sampled_from(["class", "hours", "level", "guild", "achievements"]), json_values),
        ),
        700,
    ),
    (_headers, (header_lists,), 300),
]


def _fuzz(prop: Callable[..., None], strategies: tuple[st.SearchStrategy[Any], ...], examples: int) -> int:
    """Run one property; how many cases it ran."""
    count = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.tuples(*strategies))
    def run(args: tuple[Any, ...]) -> None:
        nonlocal count
        count += 1
        prop(*args)

    run()
    return count


def test_parsers_accept_or_refuse_with_a_4xx() -> None:
    counts = {prop.__name__.strip("_"): _fuzz(prop, strategies, examples) for prop, strategies, examples in PROPERTIES}
    total = sum(counts.values())
    print(f"parser fuzz: {total} cases {counts}")
    assert total >= MIN_CASES, counts
