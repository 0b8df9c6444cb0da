"""Wire shapes of the HTTP API (msgspec); the pipeline's domain types never cross the wire directly."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from api.siwe import MAX_SIGNATURE_BYTES

Address = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        description="0x-prefixed EVM address (EIP-55 checksum when mixed case)",
        examples=["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"],
    ),
]
CollectionId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", examples=["default"])
]


class MintRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Mint a personalized token to recipient."""

    recipient: Address
    collection: CollectionId = "default"
    context: dict[str, Any] = msgspec.field(default_factory=dict)
    # "collector": the service renders and pins, then answers a signed voucher (status
    # `voucher_ready`) that the collector's wallet sends to the contract, paying its gas and price.
    payer: Literal["service", "collector"] = "service"
    # A collector-paid mint's voucher lifetime in seconds, at most the collection's `[vouchers] ttl_s`.
    voucher_ttl_s: Annotated[int, msgspec.Meta(ge=1, le=30 * 86_400)] | None = None
    # A preview's id (POST /v1/previews): mint exactly that image (its profile snapshot, style and
    # seed), whatever the wallet did since; without it the mint reads the history at its own block.
    preview_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")] | None = None


class Voucher(msgspec.Struct):
    """What a collector needs to mint: the signed EIP-712 voucher, and the transaction carrying it."""

    recipient: str
    request_id: str
    digest: str
    codec: int
    price_wei: str  # decimal string: wei amounts overflow JavaScript numbers
    deadline: int
    signature: str
    signer: str
    contract: str
    chain_id: int
    transaction: dict[str, str]  # {"to", "data", "value"}: eth_sendTransaction's fields (value hex)


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
    payer: str = "service"
    voucher: Voucher | None = None


class Health(msgspec.Struct):
    status: str


class Problem(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details; `code` is stable and machine-readable."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    request_id: str | None = None


class Ready(msgspec.Struct):
    status: str
    checks: dict[str, dict[str, Any]]


class PreviewRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Render the image the recipient's next mint in this collection will get, without minting."""

    recipient: Address
    collection: CollectionId = "default"
    context: dict[str, Any] = msgspec.field(default_factory=dict)


class PreviewView(msgspec.Struct):
    preview_id: str
    recipient: str
    collection: str
    edition: int
    seed: int
    persona: str
    style: dict[str, Any]
    profile: dict[str, Any]
    block_number: int
    width: int
    height: int
    pixel_sha256: str
    image_sha256: str
    image_url: str
    expires_at: float
    cached: bool
    # The token's name (with its edition) and description, as the mint's metadata will carry them.
    name: str = ""
    description: str = ""


class ProfileView(msgspec.Struct):
    address: str
    collection: str
    block_number: int
    profile: dict[str, Any]
    persona: str
    style: dict[str, Any]
    cached: bool = False


class Nonce(msgspec.Struct):
    nonce: str
    expires_at: float
    domain: str
    uri: str
    chain_id: int | None


SiweMessageText = Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]
# 0x + hex: an EOA's 65 bytes or a contract wallet's longer EIP-1271 signature.
SignatureHex = Annotated[str, msgspec.Meta(min_length=1, max_length=2 + 2 * MAX_SIGNATURE_BYTES)]


class SiweRequest(msgspec.Struct, forbid_unknown_fields=True):
    """An EIP-4361 message and its personal_sign signature."""

    message: SiweMessageText
    signature: SignatureHex


class SessionView(msgspec.Struct):
    token: str
    token_type: str
    address: str
    expires_at: float
    tenant: str


class WebhookAccepted(msgspec.Struct, omit_defaults=True):
    event_id: str
    status: str  # accepted | ignored
    mint: MintAccepted | None = None


class DeliveryAttempt(msgspec.Struct):
    at: float
    status: int | None
    error: str | None
    seconds: float


class Delivery(msgspec.Struct, omit_defaults=True):
    id: str
    event_id: str
    type: str
    job_id: str
    state: str  # pending | delivered | dead
    attempts: int
    created_at: float
    next_at: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: float | None = None
    history: list[DeliveryAttempt] | None = None


class DeliveryList(msgspec.Struct):
    deliveries: list[Delivery]
