"""Derived ids: canonical preimages (no two field lists share an id), valid tenants, the frozen seed."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobs import keys
from jobs.ids import (
    canonical_preimage,
    check_tenant,
    derive_request_id,
    derive_seed,
    is_tenant,
    wallet_tenant,
)

# Control characters, separators and non-ASCII included: a collision hides in exactly those.
_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=24)
_BODY = hashlib.sha256(b"{}").hexdigest()


def test_the_separator_collision_from_the_issue_is_gone() -> None:
    # Before: keccak("tenant:acme:key:x:key:k1") for both, so both requests shared one token.
    assert derive_request_id("acme", "x:key:k1", _BODY, "j1") != derive_request_id("acme:key:x", "k1", _BODY, "j2")
    assert keys.mint_idempotency_key("acme", "x:key:k1") != keys.mint_idempotency_key("acme:key:x", "k1")
    # A mint's record and a preview's: `pm:idem:preview:x:<h>` was both tenant `preview:x`'s mint
    # record and tenant `x`'s preview record.
    assert keys.mint_idempotency_key("preview:x", "k") != keys.request_idempotency_key("preview", "x", "k")


@given(st.tuples(_TEXT, _TEXT), st.tuples(_TEXT, _TEXT))
def test_distinct_tenant_and_key_pairs_never_share_a_request_id(a: tuple[str, str], b: tuple[str, str]) -> None:
    if a != b:
        assert derive_request_id(a[0], a[1], _BODY, "j") != derive_request_id(b[0], b[1], _BODY, "j")


@given(_TEXT, _TEXT)
def test_a_keyed_request_id_follows_the_body_and_never_a_job_id(tenant: str, key: str) -> None:
    other_body = hashlib.sha256(b'{"recipient":"0x"}').hexdigest()
    first = derive_request_id(tenant, key, _BODY, "job-1")
    # A retry (another job id, same key and body) keeps the id: it never mints twice ...
    assert derive_request_id(tenant, key, _BODY, "job-2") == first
    # ... another body under the same key can never reach the first body's token.
    assert derive_request_id(tenant, key, other_body, "job-1") != first
    # Unkeyed ids live in their own domain: no job id spells a keyed request's id.
    assert derive_request_id(tenant, None, _BODY, key) != first


@given(st.tuples(_TEXT, _TEXT, _TEXT), st.tuples(_TEXT, _TEXT, _TEXT))
def test_distinct_operations_never_share_an_idempotency_record(
    a: tuple[str, str, str], b: tuple[str, str, str]
) -> None:
    if a != b:
        assert keys.request_idempotency_key(*a) != keys.request_idempotency_key(*b)
    # Whatever an operation is called, "mint" included, it never lands on a mint's own record.
    assert keys.request_idempotency_key(*a) != keys.mint_idempotency_key(a[1], a[2])
    assert keys.request_idempotency_key("mint", a[1], a[2]) != keys.mint_idempotency_key(a[1], a[2])


@given(st.lists(_TEXT, max_size=4), st.lists(_TEXT, max_size=4))
def test_the_canonical_preimage_is_injective(a: list[str], b: list[str]) -> None:
    if a != b:
        assert canonical_preimage("tag", *a) != canonical_preimage("tag", *b)


@given(st.tuples(_TEXT, _TEXT, _TEXT), st.tuples(_TEXT, _TEXT, _TEXT))
def test_per_tenant_counters_never_share_a_key(a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
    recipient = "0x" + "ab" * 20
    if a[:2] != b[:2]:
        assert keys.minted_key(a[0], a[1], recipient) != keys.minted_key(b[0], b[1], recipient)
    if a[0] != b[0]:
        assert keys.recipient_rate_limit_key(a[0], recipient) != keys.recipient_rate_limit_key(b[0], recipient)


def test_the_seed_keeps_its_preimage() -> None:
    # Frozen on purpose (every minted token's art depends on it; previews must equal mints).
    expected = int.from_bytes(hashlib.sha256(b"default:0xabc:3").digest()[:8], "big")
    assert derive_seed("default", "0xAbC", 3) == expected


@pytest.mark.parametrize("name", ["acme", "tenant-a", "game-studio", "a", "t.1_x", "x" * 64])
def test_operator_tenant_names_that_are_accepted(name: str) -> None:
    assert check_tenant(name) == name
    assert is_tenant(name)


@pytest.mark.parametrize(
    "name", ["", "acme:key:x", "Acme", "-acme", "a b", "acme\n", "wallet:0x" + "ab" * 20, "x" * 65, "é", "a/b"]
)
def test_operator_tenant_names_that_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="tenant name"):
        check_tenant(name)


def test_wallet_sessions_have_their_own_tenant_space() -> None:
    address = "0x" + "Ab" * 20
    assert wallet_tenant(address) == f"wallet:{address}"
    assert is_tenant(wallet_tenant(address))
    with pytest.raises(ValueError):
        wallet_tenant("0x12:key:x")
