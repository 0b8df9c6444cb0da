"""Every Redis key keeps the spelling records were written under (a renamed key is lost data)."""

from __future__ import annotations

import hashlib

from jobs import keys
from jobs.ids import canonical_digest


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_keys_keep_their_spellings() -> None:
    assert keys.job_key("j1") == "pm:job:j1"
    assert keys.events_key("j1") == "pm:job:j1:events"
    assert keys.ALL_JOBS_KEY == "pm:jobs"
    assert keys.OPEN_JOBS_KEY == "pm:jobs:open"
    assert keys.edition_key("default", "0xAbC") == "pm:edition:default:0xabc"
    # Per tenant since issue 13 (one tenant must not fill another's cap); caller-named parts escaped.
    assert keys.minted_key("t", "default", "0xAbC") == "pm:minted:t:default:0xabc"
    assert keys.minted_key("wallet:0xAb", "default", "0xAbC") == "pm:minted:wallet%3A0xAb:default:0xabc"
    # Canonical digests since issue 13 (jobs/ids.py canonical_preimage); the old mint spelling is read only.
    assert keys.mint_idempotency_key("t", "k-1") == (
        "pm:idem:mint:d9cedaebd04769bc21f5d89fa751140a34332fc2f036ed427c1542f45be84c44"
    )
    assert keys.legacy_mint_idempotency_key("t", "k-1") == f"pm:idem:t:{_sha('k-1')}"
    assert keys.request_idempotency_key("webhook", "t", "k-1") == (
        "pm:idem:webhook:07c9fd6b8a7187f9166d86507e4f4e138c4d1045b552b3a948650339e96f35ed"
    )
    assert keys.rate_limit_key("source:shop") == "pm:rl:source:shop"
    assert keys.recipient_rate_limit_key("t", "0xAbC") == "pm:rl:recipient:t:0xabc"  # per tenant (issue 13)
    assert keys.credential_rate_limit_key("d1") == "pm:rl:key:d1"
    assert keys.API_KEY_INDEX_KEY == "pm:apikeys"
    assert keys.api_key_key("d1") == "pm:apikey:d1"
    assert keys.session_key("d1") == "pm:session:d1"
    assert keys.siwe_nonce_key("n1") == "pm:siwe:nonce:n1"
    assert keys.webhook_endpoint_key("t") == "pm:tenant:t:webhook"
    assert keys.delivery_key("j1.confirmed") == "pm:whout:j1.confirmed"
    assert keys.delivery_attempts_key("j1.confirmed") == "pm:whout:j1.confirmed:attempts"
    assert keys.tenant_deliveries_key("t") == "pm:whout:tenant:t"
    assert keys.DELIVERIES_DUE_KEY == "pm:whout:due"
    assert keys.inbound_event_key("shop", "e1") == f"pm:whin:shop:{canonical_digest('inbound/event', 'shop', 'e1')}"
    assert keys.lease_key("minter:1:0xA") == "pm:lease:minter:1:0xA"
    assert keys.lease_fence_key("minter:1:0xA") == "pm:lease:minter:1:0xA:fence"
    assert keys.minter_journal_key(1, "0xA") == "pm:minter:1:0xA:txs"
    assert keys.minter_health_key(1, "0xA") == "pm:minter:health:1:0xA"
    assert keys.MINTER_HEALTH_PATTERN == "pm:minter:health:*"
    assert keys.preview_image_key("p1") == "pm:cache:preview-image:p1"
    assert keys.preview_key("default", "0xAbC", 2, "h", "f0") == "pm:cache:preview:default:0xabc:2:h:f0"
    assert keys.profile_view_key("default", "0xAbC", 17) == "pm:cache:profile-view:default:0xabc:17"
    assert keys.HISTORY_CACHE_PREFIX == "pm:history"


def test_templates_filled_in_lua_spell_the_same_keys() -> None:
    # jobs/scripts/key_template.lua fills each '{}' in turn, as str.format does here.
    assert keys.WEBHOOK_ENDPOINT_TEMPLATE.format("t") == keys.webhook_endpoint_key("t")
    assert keys.DELIVERY_TEMPLATE.format("j.failed") == keys.delivery_key("j.failed")
    assert keys.TENANT_DELIVERIES_TEMPLATE.format("t") == keys.tenant_deliveries_key("t")
    for template in (keys.WEBHOOK_ENDPOINT_TEMPLATE, keys.DELIVERY_TEMPLATE, keys.TENANT_DELIVERIES_TEMPLATE):
        assert template.count("{}") == 1


def test_inbound_event_keys_cover_the_whole_id_and_the_source() -> None:
    prefix = "e" * 255
    long_a, long_b = prefix + "a", prefix + "b"
    for derive in (keys.inbound_event_key, keys.inbound_idempotency_key):
        assert derive("shop", long_a) != derive("shop", long_b)
        assert derive("shop", "e1") != derive("shop2", "e1")
        assert derive("a:b", "c") != derive("a", "b:c")
    assert keys.inbound_event_key("a:b", "c").startswith("pm:whin:a%3Ab:")
    assert " " in keys.inbound_idempotency_key("shop", "e1")  # outside the Idempotency-Key alphabet
