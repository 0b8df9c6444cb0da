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

from jobs.ids import canonical_digest


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _segment(text: str) -> str:
    """A caller-named part of a key with its `%` and `:` escaped, so the parts stay apart (injective)."""
    return text.replace("%", "%25").replace(":", "%3A")


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


def minted_key(tenant: str, collection: str, recipient: str) -> str:
    """A tenant's live (not failed) mints to a wallet in a collection: what a per-wallet cap counts.

    Per tenant, so one tenant filling a wallet's cap never locks another out of it. The job record
    keeps the key it was counted under (`cap_key`), so release_cap.lua gives back the same slot.
    """
    return f"pm:minted:{_segment(tenant)}:{_segment(collection)}:{recipient.lower()}"


def mint_idempotency_key(tenant: str, idempotency_key: str) -> str:
    """A mint's Idempotency-Key: `<job id>|<body hash>`, 24 h (a canonical digest of tenant and key)."""
    return f"pm:idem:mint:{canonical_digest('idempotency/mint-job', tenant, idempotency_key)}"


def legacy_mint_idempotency_key(tenant: str, idempotency_key: str) -> str:
    """The spelling mint records had before the canonical one: read only, never written.

    accept.lua still honours a record under it, so a request accepted just before the upgrade and
    retried after it finds its job instead of minting again; unused 24 h after the upgrade.
    """
    return f"pm:idem:{tenant}:{_sha256(idempotency_key)}"


def request_idempotency_key(operation: str, caller: str, idempotency_key: str) -> str:
    """Another POST's Idempotency-Key (api/idempotency.py): the pending or stored response.

    The digest covers the operation too (and a tag of its own), so a preview's record, a
    redelivery's and a mint's can never share a key whatever the names.
    """
    digest = canonical_digest("idempotency/response", operation, caller, idempotency_key)
    return f"pm:idem:{_segment(operation)}:{digest}"


# --- rarity caps (jobs/style_caps.py) ---


def style_caps_key(collection: str) -> str:
    """A collection's live tokens (styled, not failed or expired) under its `[style.caps]`: a hash,
    `tokens` → all of them, `<field>=<value>` → those with that choice. Never expires."""
    return f"pm:caps:{_segment(collection)}"


# --- rate limits (jobs/ratelimit.py, GCRA: one timestamp per bucket) ---


def rate_limit_key(bucket: str) -> str:
    """A bucket: `recipient:<tenant>:<address>`, `key:<credential digest>`, `source:<source>`, `scan:<tenant>`,
    `siwe-nonce:<client address or IPv6 /64>`."""
    return f"pm:rl:{bucket}"


def recipient_rate_limit_key(tenant: str, recipient: str) -> str:
    """A tenant's bucket for mints to one wallet: per tenant, so no tenant can use up another's."""
    return rate_limit_key(f"recipient:{_segment(tenant)}:{recipient.lower()}")


def credential_rate_limit_key(credential_digest: str) -> str:
    """An API key's or a session's bucket, by the credential's digest."""
    return rate_limit_key(f"key:{credential_digest}")


def history_scan_bucket(tenant: str) -> str:
    """A tenant's bucket (a name for rate_limit_key) of uncached wallet history scans: profiles, previews."""
    return f"scan:{_segment(tenant)}"


# --- tenancy budgets (jobs/store.py, api/previews.py) ---


def daily_mint_budget_key(bucket: str, utc_day: str) -> str:
    """Mints accepted for a budget bucket (a tenant, or all SIWE sessions) on a UTC day `YYYY-MM-DD`; expires."""
    return f"pm:budget:mints:{_segment(bucket)}:{utc_day}"


def previews_in_flight_key(tenant: str) -> str:
    """A tenant's previews rendering or queued: a sorted set of slot ids scored by when each lapses."""
    return f"pm:previews:inflight:{_segment(tenant)}"


# --- the pipeline's fair share (jobs/fairshare.py) ---


def fair_admitted_key(tenant: str) -> str:
    """A tenant's jobs admitted to the shared pipeline queue: a set, at most its share."""
    return f"pm:fair:admitted:{_segment(tenant)}"


def fair_waiting_key(tenant: str) -> str:
    """A tenant's accepted jobs waiting for a place in the pipeline queue, scored by creation time."""
    return f"pm:fair:waiting:{_segment(tenant)}"


# The tenants with jobs admitted or waiting: what the reconciler's sweep walks.
FAIR_TENANTS_KEY = "pm:fair:tenants"


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
    """An inbound webhook event already taken (deduplication within the tolerance window).

    Under the source's own prefix, by a canonical digest of source and event id: whole ids of any
    length stay apart, and no other key (an API key's record, another source's event) shares it.
    """
    return f"pm:whin:{_segment(source)}:{canonical_digest('inbound/event', source, event_id)}"


INBOUND_IDEMPOTENCY_PREFIX = "inbound-event "  # the space: outside every Idempotency-Key a caller may send


def inbound_idempotency_key(source: str, event_id: str) -> str:
    """The idempotency key a source's event mints under, in its tenant's job space.

    A canonical digest of source and event id (the whole id, never cut), behind a prefix with a
    space: a caller's Idempotency-Key is printable ASCII without spaces (api/validation.py), so no
    API key or session of the tenant can spell it and pre-claim a future event.
    """
    return INBOUND_IDEMPOTENCY_PREFIX + canonical_digest("inbound/idempotency", source, event_id)


# --- live streams (api/streams.py) ---


def stream_leases_key(tenant: str, key_id: str) -> str:
    """One credential's open SSE streams: a sorted set of lease ids scored by expiry (ms, Redis clock)."""
    return f"pm:sse:leases:{canonical_digest('sse/leases', tenant, key_id)}"


def stream_wake_key(hub_id: str) -> str:
    """An API process's wake-up stream: a new subscriber's XADD ends the reader's XREAD BLOCK early."""
    return f"pm:sse:wake:{hub_id}"


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


def minter_route_key(route: str) -> str:
    """Present while a minter takes jobs off this route's mint queue (route: `default` or a chain id)."""
    return f"pm:minter:route:{route}"


def voucher_watch_key(route: str) -> str:
    """Collector-paid jobs whose voucher is out on a chain (its route), by when to look at the chain next."""
    return f"pm:vouchers:{_segment(route)}"


def minter_health_key(chain_id: int, signer: str) -> str:
    """A minter's last health report (expires when it stops reporting)."""
    return f"{_MINTER_HEALTH_PREFIX}{chain_id}:{signer}"


# --- content ---

# Every CID this deployment pinned (a set): the gateway reads through to the remote pinners only for
# these, and answers any other CID 404 at once. About 2 members per token; never expires (tokens don't).
PINNED_CIDS_KEY = "pm:pinned"


# --- caches ---


def preview_image_key(preview_id: str) -> str:
    """A rendered preview's PNG, written by the worker that rendered it and read by the API."""
    return f"pm:cache:preview-image:{preview_id}"


def preview_snapshot_key(preview_id: str) -> str:
    """What a preview was made from (profile, style, seed, edition): a mint with its id adopts it."""
    return f"pm:cache:preview-snapshot:{_segment(preview_id)}"


def preview_key(collection: str, recipient: str, edition: int, context_hash: str, features: str) -> str:
    """A preview's answer for a wallet's next edition with this app context and this profile (a
    digest of its features at the head: new activity is another answer)."""
    return f"pm:cache:preview:{collection}:{recipient.lower()}:{edition}:{context_hash}:{features}"


def profile_view_key(collection: str, wallet: str, block: int) -> str:
    """A wallet's profile-and-style answer in a collection, as of one block (a newer head is another answer)."""
    return f"pm:cache:profile-view:{collection}:{wallet.lower()}:{block}"


# Wallet history summaries and the chain head (personalization.cache.HistoryCache keys under it).
HISTORY_CACHE_PREFIX = "pm:history"


# --- replication (config/redis_urls.Replication) ---

# A write WAIT can wait on: `Replication.confirm` sets it, then WAITs for replicas to hold it and
# every write before it.
REPLICATION_PROBE_KEY = "pm:replication:probe"
