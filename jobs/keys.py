"""Every Redis key the service uses, named in one place.

A template (`…{}…`) is for a Lua script that builds the key from a field it reads itself (the job's
tenant, say): the script gets the template in ARGV and fills it (jobs/scripts/key_template.lua), so
even those keys are spelled only here. Not here, on purpose: the SAQ queues' own keys (SAQ names
them under `saq:<queue>`, jobs/queues.py names the queues), and the keys the libraries keep to
themselves: personalization's LLM answer store (`pm:llm:<model>:<prompt sha256>`, inside
personalization/orchestrator/llm.py: only the library knows what identifies an answer). The
history cache's prefix is the service's and is passed in (HISTORY_CACHE_PREFIX).
"""

from __future__ import annotations

import hashlib


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- jobs (jobs/store.py) ---


def job_key(job_id: str) -> str:
    """The job record: one hash (see jobs/codec.py for its fields)."""
    return f"pm:job:{job_id}"


def events_key(job_id: str) -> str:
    """The job's status events: a stream, what SSE replays and follows."""
    return f"pm:job:{job_id}:events"


# Every job, scored by creation time.
ALL_JOBS_KEY = "pm:jobs"

# Jobs not yet confirmed or failed, scored by creation time: what the reconciler looks at.
OPEN_JOBS_KEY = "pm:jobs:open"


def edition_key(collection: str, recipient: str) -> str:
    """The next edition for a wallet in a collection: a counter, moved when a job is accepted."""
    return f"pm:edition:{collection}:{recipient.lower()}"


MINTED_TEMPLATE = "pm:minted:{}:{}"  # collection, lower-cased recipient


def minted_key(collection: str, recipient: str) -> str:
    """Live (not failed) mints per wallet per collection: what a per-wallet cap counts."""
    return MINTED_TEMPLATE.format(collection, recipient.lower())


def mint_idempotency_key(tenant: str, idempotency_key: str) -> str:
    """A mint's Idempotency-Key: `<job id>|<body hash>`, 24 h."""
    return f"pm:idem:{tenant}:{_sha256(idempotency_key)}"


def request_idempotency_key(operation: str, caller: str, idempotency_key: str) -> str:
    """Another POST's Idempotency-Key (api/idempotency.py): the pending or stored response."""
    return f"pm:idem:{operation}:{caller}:{_sha256(idempotency_key)}"


# --- rate limits (jobs/ratelimit.py, GCRA: one timestamp per bucket) ---


def rate_limit_key(bucket: str) -> str:
    """A bucket: `recipient:<address>`, `key:<credential digest>`, `source:<webhook source>`."""
    return f"pm:rl:{bucket}"


def recipient_rate_limit_key(recipient: str) -> str:
    return rate_limit_key(f"recipient:{recipient.lower()}")


def credential_rate_limit_key(credential_digest: str) -> str:
    """An API key's or a session's bucket, by the credential's digest."""
    return rate_limit_key(f"key:{credential_digest}")


# --- callers (api/keys.py, api/siwe.py, api/auth.py) ---

# Every API key's record by key id, revoked ones included (what `keys list` shows).
API_KEY_INDEX_KEY = "pm:apikeys"


def api_key_key(secret_digest: str) -> str:
    """The record a request with this API key looks up (deleted on revoke)."""
    return f"pm:apikey:{secret_digest}"


def session_key(token_digest: str) -> str:
    """A SIWE session's record, by the token's digest."""
    return f"pm:session:{token_digest}"


def siwe_nonce_key(nonce: str) -> str:
    """A SIWE nonce handed out and not yet used."""
    return f"pm:siwe:nonce:{nonce}"


# --- webhooks (jobs/outbox.py, processes/webhook_deliverer.py, api/inbound.py) ---

WEBHOOK_ENDPOINT_TEMPLATE = "pm:tenant:{}:webhook"  # tenant
DELIVERY_TEMPLATE = "pm:whout:{}"  # delivery id (`<job id>.<status>`)
TENANT_DELIVERIES_TEMPLATE = "pm:whout:tenant:{}"  # tenant

# Outbound deliveries by due time.
DELIVERIES_DUE_KEY = "pm:whout:due"


def webhook_endpoint_key(tenant: str) -> str:
    """Where a tenant's status webhooks go and their signing secret."""
    return WEBHOOK_ENDPOINT_TEMPLATE.format(tenant)


def delivery_key(delivery_id: str) -> str:
    """One outbound delivery (the transactional outbox's row)."""
    return DELIVERY_TEMPLATE.format(delivery_id)


def delivery_attempts_key(delivery_id: str) -> str:
    """One delivery's attempts, newest last."""
    return f"{delivery_key(delivery_id)}:attempts"


def tenant_deliveries_key(tenant: str) -> str:
    """A tenant's deliveries by creation time."""
    return TENANT_DELIVERIES_TEMPLATE.format(tenant)


def inbound_event_key(source: str, event_id: str) -> str:
    """An inbound webhook event already taken (deduplication within the tolerance window)."""
    return f"pm:whin:{source}:{_sha256(event_id)}"


# --- the minter (jobs/lease.py, processes/chain_minter.py) ---


def lease_key(name: str) -> str:
    """A fenced lease: holds the holder's fencing token."""
    return f"pm:lease:{name}"


def lease_fence_key(name: str) -> str:
    """A lease's fencing-token counter."""
    return f"pm:lease:{name}:fence"


def minter_journal_key(chain_id: int, signer: str) -> str:
    """The minter's unconfirmed transactions, by nonce."""
    return f"pm:minter:{chain_id}:{signer}:txs"


_MINTER_HEALTH_PREFIX = "pm:minter:health:"
MINTER_HEALTH_PATTERN = f"{_MINTER_HEALTH_PREFIX}*"  # every live minter's report (SCAN MATCH)


def minter_health_key(chain_id: int, signer: str) -> str:
    """A minter's last health report (expires when it stops reporting)."""
    return f"{_MINTER_HEALTH_PREFIX}{chain_id}:{signer}"


# --- caches ---


def preview_image_key(preview_id: str) -> str:
    """A rendered preview's PNG, written by the worker that rendered it and read by the API."""
    return f"pm:cache:preview-image:{preview_id}"


def preview_key(collection: str, recipient: str, edition: int, context_hash: str) -> str:
    """A preview's answer for a wallet's next edition with this app context."""
    return f"pm:cache:preview:{collection}:{recipient.lower()}:{edition}:{context_hash}"


def profile_view_key(collection: str, wallet: str) -> str:
    """A wallet's profile-and-style answer in a collection."""
    return f"pm:cache:profile-view:{collection}:{wallet.lower()}"


# Wallet history summaries and the chain head (personalization.cache.HistoryCache keys under it).
HISTORY_CACHE_PREFIX = "pm:history"
