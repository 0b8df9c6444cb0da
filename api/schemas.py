"""Wire shapes of the HTTP API (msgspec); the pipeline's domain types never cross the wire directly."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

Address = Annotated[str, msgspec.Meta(min_length=1, max_length=64, description="0x-prefixed EVM address")]
CollectionId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class MintRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Mint a personalized token to recipient."""

    recipient: Address
    collection: CollectionId = "default"
    context: dict[str, Any] = msgspec.field(default_factory=dict)


class Links(msgspec.Struct):
    self: str
    events: str


class MintAccepted(msgspec.Struct):
    id: str
    status: str
    links: Links


class JobError(msgspec.Struct):
    code: str
    message: str


class MintStatus(msgspec.Struct, omit_defaults=True):
    id: str
    status: str
    recipient: str
    collection: str
    edition: int
    request_id: str
    created_at: float
    links: Links
    detail: str | None = None
    token_id: int | None = None
    tx_hash: str | None = None
    block_number: int | None = None
    contract: str | None = None
    chain_id: int | None = None
    token_uri: str | None = None
    image_uri: str | None = None
    image_url: str | None = None
    metadata_url: str | None = None
    persona: str | None = None
    profile: dict[str, Any] | None = None
    style: dict[str, Any] | None = None
    timings: dict[str, float] = msgspec.field(default_factory=dict)
    error: JobError | None = None


class Health(msgspec.Struct):
    status: str
