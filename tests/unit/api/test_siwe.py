"""EIP-4361 parsing and the policy checks, without Redis: the strict parser and each refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import given
from hypothesis import strategies as st

from api.siwe import (
    MAX_SIGNATURE_BYTES,
    SiweError,
    SiweMessage,
    SiwePolicy,
    personal_sign_hash,
    recover_signer,
    signature_bytes,
)

ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)

# The example message from EIP-4361 (statement, expiry, resources and all).
SPEC_EXAMPLE = """service.invalid wants you to sign in with your Ethereum account:
0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2

I accept the ServiceOrg Terms of Service: https://service.invalid/tos

URI: https://service.invalid/login
Version: 1
Chain ID: 1
Nonce: 32891756
Issued At: 2021-09-30T16:25:24Z
Expiration Time: 2021-10-01T16:25:24.000Z
Resources:
- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/
- https://example.com/my-web2-claim.json"""


def message(**changes: object) -> SiweMessage:
    fields: dict[str, object] = {
        "domain": "127.0.0.1:8000",
        "address": ADDRESS,
        "uri": "http://127.0.0.1:8000/login",
        "version": "1",
        "chain_id": 31337,
        "nonce": "abcdef0123456789",
        "issued_at": NOW,
        "statement": "Sign in to Persona Mint.",
    }
    fields.update(changes)
    return SiweMessage(**fields)  # type: ignore[arg-type]


POLICY = SiwePolicy(domain="127.0.0.1:8000", uri="http://127.0.0.1:8000", chain_id=31337, clock_skew_s=60)


def test_parses_the_spec_example() -> None:
    parsed = SiweMessage.parse(SPEC_EXAMPLE)
    assert parsed.domain == "service.invalid"
    assert parsed.address == "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2"
    assert parsed.statement == "I accept the ServiceOrg Terms of Service: https://service.invalid/tos"
    assert parsed.chain_id == 1
    assert parsed.nonce == "32891756"
    assert parsed.issued_at == datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC)
    assert parsed.expiration_time == datetime(2021, 10, 1, 16, 25, 24, tzinfo=UTC)
    assert len(parsed.resources) == 2


def test_statement_is_optional_and_scheme_allowed() -> None:
    bare = message(statement=None, scheme="https")
    text = bare.to_text()
    assert "\n\n\nURI: " in text
    assert SiweMessage.parse(text) == bare


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda t: t.replace(" wants you to sign in", " wants to sign in"), "preamble"),
        (lambda t: t.replace(ADDRESS, ADDRESS.lower().replace("0x", "0X")), "address"),
        (lambda t: t.replace(ADDRESS, ADDRESS[:-1] + "9"), "checksum"),
        (lambda t: t.replace("Version: 1", "Version: 2"), "version"),
        (lambda t: t.replace("Chain ID: 31337", "Chain ID: 0x7a69"), "chain id"),
        (lambda t: t.replace("Nonce: abcdef0123456789", "Nonce: short"), "nonce"),
        (lambda t: t.replace("Nonce: abcdef0123456789", "Nonce: abc-def-0123"), "nonce chars"),
        (lambda t: t.replace("2026-01-02T03:04:05.000Z", "2026-01-02 03:04:05"), "date"),
        (lambda t: t.replace("2026-01-02T03:04:05.000Z", "2026-01-02T03:04:05"), "zone"),
        (lambda t: t.replace("URI: ", "Uri: "), "field name"),
        (lambda t: t + "\n", "trailing newline"),
        (lambda t: t + "\nExtra: field", "extra line"),
        (lambda t: t.replace("\n", "\r\n"), "CRLF"),
        (lambda t: t.replace("Version: 1\n", ""), "missing field"),
        (lambda t: t.replace("URI: http://127.0.0.1:8000/login", "URI: not a uri"), "uri"),
        (lambda t: "\n".join(reversed(t.split("\n"))), "order"),
        (lambda t: t.replace("Sign in to Persona Mint.", "Sign in ✓"), "statement outside RFC 3986 characters"),
        (lambda t: t.replace("Sign in to Persona Mint.", 'Say "hi"'), "statement with a quote"),
    ],
)
def test_strict_parser_refuses(mutate, reason: str) -> None:  # type: ignore[no-untyped-def]
    text = mutate(message().to_text())
    with pytest.raises(SiweError) as refused:
        SiweMessage.parse(text)
    assert refused.value.code == "invalid_siwe_message", reason
    assert refused.value.status == 400


STATEMENT_CHARS = "abcXYZ019-._~:/?#[]@!$&'()*+,;= "
_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)).map(
    lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000)
)


@given(
    statement=st.one_of(st.none(), st.text(STATEMENT_CHARS, min_size=1, max_size=80)),
    chain_id=st.integers(min_value=1, max_value=2**53),
    nonce=st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=8, max_size=32),
    issued_at=_times,
    expiration=st.one_of(st.none(), _times),
    not_before=st.one_of(st.none(), _times),
    request_id=st.one_of(st.none(), st.text("abc123-._~:@/?", max_size=20)),
    resources=st.lists(st.sampled_from(["ipfs://bafy", "https://example.com/a?b=c"]), max_size=3),
)
def test_round_trip(  # type: ignore[no-untyped-def]
    statement, chain_id, nonce, issued_at, expiration, not_before, request_id, resources
) -> None:
    original = message(
        statement=statement.strip() or None if statement else None,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=issued_at,
        expiration_time=expiration,
        not_before=not_before,
        request_id=request_id,
        resources=tuple(resources),
    )
    assert SiweMessage.parse(original.to_text()) == original


@given(st.text(max_size=600))
def test_parser_never_crashes(text: str) -> None:
    # Any text either parses or is refused with the one stable code; nothing else escapes.
    refused: SiweError | None = None
    try:
        SiweMessage.parse(text)
    except SiweError as exc:
        refused = exc
    assert refused is None or refused.code == "invalid_siwe_message"


def test_policy_checks_each_field() -> None:
    now = NOW.timestamp()
    POLICY.check(message(), now)

    def refused(code: str, **changes: object) -> None:
        with pytest.raises(SiweError) as caught:
            POLICY.check(message(**changes), now)
        assert caught.value.code == code
        assert caught.value.status == 401

    refused("siwe_domain_mismatch", domain="evil.example")
    refused("siwe_domain_mismatch", scheme="https")
    refused("siwe_uri_mismatch", uri="http://evil.example/login")
    refused("siwe_uri_mismatch", uri="https://127.0.0.1:8000/login")
    refused("siwe_chain_mismatch", chain_id=1)
    refused("siwe_expired", expiration_time=NOW - timedelta(minutes=5))
    refused("siwe_not_yet_valid", not_before=NOW + timedelta(minutes=5))
    refused("siwe_not_yet_valid", issued_at=NOW + timedelta(minutes=5))
    # Inside the clock-skew allowance both ways.
    POLICY.check(message(expiration_time=NOW - timedelta(seconds=30), not_before=NOW + timedelta(seconds=30)), now)


def test_recover_signer() -> None:
    account = Account.create()
    text = message(address=account.address).to_text()
    signature = Account.sign_message(encode_defunct(text=text), account.key).signature.to_0x_hex()
    assert recover_signer(text, signature) == account.address
    assert recover_signer(text + " ", signature) != account.address
    for bad in ("0x1234", "not hex", "0x" + "00" * 65):
        with pytest.raises(SiweError) as caught:
            recover_signer(text, bad)
        assert caught.value.code == "siwe_bad_signature"


@given(st.text(max_size=300))
def test_personal_sign_hash_is_what_wallets_sign(text: str) -> None:
    """EIP-1271 wallets are asked about the exact EIP-191 hash an EOA's personal_sign covers."""
    key = b"\x01" * 32
    by_message = Account.sign_message(encode_defunct(text=text), key).signature
    by_hash = Account.unsafe_sign_hash(personal_sign_hash(text), key).signature
    assert by_message == by_hash


def test_signature_bytes_bounds() -> None:
    assert signature_bytes("0x" + "ab" * 65) == b"\xab" * 65
    assert len(signature_bytes("0x" + "00" * MAX_SIGNATURE_BYTES)) == MAX_SIGNATURE_BYTES
    for bad in ("", "0x", "ab" * 65, "0xabc", "0xzz", "0x" + "00" * (MAX_SIGNATURE_BYTES + 1)):
        with pytest.raises(SiweError) as caught:
            signature_bytes(bad)
        assert caught.value.code == "siwe_bad_signature"
