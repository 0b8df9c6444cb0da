"""Every Redis key keeps the spelling records were written under (a renamed key is lost data)."""

from __future__ import annotations

import hashlib

from jobs import keys


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_keys_keep_their_spellings() -> None:
    assert keys.job_key("j1") == "pm:job:j1"
    assert keys.events_key("j1") == "pm:job:j1:events"
    assert keys.ALL_JOBS_KEY == "pm:jobs"
    assert keys.OPEN_JOBS_KEY == "pm:jobs:open"
    assert keys.edition_key("default", "0xAbC") == "pm:edition:default:0xabc"
    assert keys.minted_key("default", "0xAbC") == "pm:minted:default:0xabc"
    assert keys.mint_idempotency_key("t", "k-1") == f"pm:idem:t:{_sha('k-1')}"
    assert keys.request_idempotency_key("webhook", "t", "k-1") == f"pm:idem:webhook:t:{_sha('k-1')}"
    assert keys.rate_limit_key("source:shop") == "pm:rl:source:shop"
    assert keys.recipient_rate_limit_key("0xAbC") == "pm:rl:recipient:0xabc"
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
    assert keys.inbound_event_key("shop", "e1") == f"pm:whin:shop:{_sha('e1')}"
    assert keys.lease_key("minter:1:0xA") == "pm:lease:minter:1:0xA"
    assert keys.lease_fence_key("minter:1:0xA") == "pm:lease:minter:1:0xA:fence"
    assert keys.minter_journal_key(1, "0xA") == "pm:minter:1:0xA:txs"
    assert keys.minter_health_key(1, "0xA") == "pm:minter:health:1:0xA"
    assert keys.MINTER_HEALTH_PATTERN == "pm:minter:health:*"
    assert keys.preview_image_key("p1") == "pm:cache:preview-image:p1"
    assert keys.preview_key("default", "0xAbC", 2, "h") == "pm:cache:preview:default:0xabc:2:h"
    assert keys.profile_view_key("default", "0xAbC") == "pm:cache:profile-view:default:0xabc"
    assert keys.HISTORY_CACHE_PREFIX == "pm:history"


def test_templates_filled_in_lua_spell_the_same_keys() -> None:
    # jobs/scripts/key_template.lua fills each '{}' in turn, as str.format does here.
    assert keys.WEBHOOK_ENDPOINT_TEMPLATE.format("t") == keys.webhook_endpoint_key("t")
    assert keys.DELIVERY_TEMPLATE.format("j.failed") == keys.delivery_key("j.failed")
    assert keys.TENANT_DELIVERIES_TEMPLATE.format("t") == keys.tenant_deliveries_key("t")
    assert keys.MINTED_TEMPLATE.format("c", "0xab") == keys.minted_key("c", "0xAB")
    for template in (keys.WEBHOOK_ENDPOINT_TEMPLATE, keys.DELIVERY_TEMPLATE, keys.TENANT_DELIVERIES_TEMPLATE):
        assert template.count("{}") == 1
    assert keys.MINTED_TEMPLATE.count("{}") == 2
