"""The job record's Redis layout, encoded and decoded in this one place.

One hash per job (jobs.keys.job_key): the request's fields as strings (`status`, `tenant`,
`recipient`, `collection`, `context` (JSON), `request_id`, `created_at`, `attempts`, `edition`,
and `seed` in records that stored it), each saved stage's output as a JSON document in
`stage:<name>` and its seconds in `time:<name>`, `detail`, on failure `error` (JSON) and
`cap_released`, and `payer` (+ `voucher_ttl_s`) for a collector-paid job. Stage documents are written with sorted
keys, as they always were, and read straight from bytes into their types (status reads decode every record they serve).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import msgspec

from jobs.ids import derive_seed
from jobs.model import (
    Job,
    JobError,
    JobStatus,
    MintStage,
    Payer,
    PinStage,
    RenderStage,
    Stage,
    StageOutput,
    VoucherStage,
)
from personalization.orchestrator import Orchestration
from personalization.profile import WalletProfile

_encoder = msgspec.json.Encoder(order="sorted")

_OUTPUT_TYPES: dict[Stage, type[StageOutput]] = {
    Stage.PROFILE: WalletProfile,
    Stage.STYLE: Orchestration,
    Stage.RENDER: RenderStage,
    Stage.PIN: PinStage,
    Stage.VOUCHER: VoucherStage,
    Stage.MINT: MintStage,
}
_profile = msgspec.json.Decoder(WalletProfile)
_style = msgspec.json.Decoder(Orchestration)
_render = msgspec.json.Decoder(RenderStage)
_pin = msgspec.json.Decoder(PinStage)
_voucher = msgspec.json.Decoder(VoucherStage)
_mint = msgspec.json.Decoder(MintStage)
_error = msgspec.json.Decoder(JobError)
_context = msgspec.json.Decoder(dict[str, Any])


def output_field(stage: Stage) -> str:
    """The hash field holding a stage's output."""
    return f"stage:{stage}"


def timing_field(stage: Stage) -> str:
    """The hash field holding a stage's seconds."""
    return f"time:{stage}"


_TIMING_PREFIX = b"time:"


# Lookups rather than enum calls: status reads decode every record they serve.
_STATUSES = {status.value.encode(): status for status in JobStatus}
_TIMINGS = {timing_field(stage).encode(): stage for stage in Stage}


def encode_output(output: StageOutput) -> bytes:
    """A stage's output as its `stage:<name>` document."""
    return _encoder.encode(output)


def decode_output(stage: Stage, raw: bytes) -> StageOutput:
    """A `stage:<name>` document as its stage's type."""
    return msgspec.json.decode(raw, type=_OUTPUT_TYPES[stage])


def encode_error(error: JobError) -> bytes:
    return _encoder.encode(error)


def encode_event_data(data: Mapping[str, str | int]) -> str:
    """A status event's `data` field (what SSE clients get as `data`)."""
    return json.dumps(dict(data), sort_keys=True)


def new_record_fields(
    *,
    tenant: str,
    recipient: str,
    collection: str,
    context: dict[str, Any],
    request_id: str,
    created_at: float,
    payer: Payer = Payer.SERVICE,
    voucher_ttl_s: int | None = None,
) -> list[str]:
    """A new job's fields, [name, value, ...], as the accept script writes them (it adds `edition`);
    `payer` only when the collector pays (a record without it is service-paid, as all were)."""
    collector = ["payer", str(Payer.COLLECTOR)] if payer is Payer.COLLECTOR else []
    if voucher_ttl_s is not None:
        collector += ["voucher_ttl_s", str(voucher_ttl_s)]
    return [
        *collector,
        "status", JobStatus.QUEUED,
        "tenant", tenant,
        "recipient", recipient,
        "collection", collection,
        "context", json.dumps(context, sort_keys=True),
        "request_id", request_id,
        "created_at", repr(created_at),
        "attempts", "0",
    ]  # fmt: skip


def decode_job(job_id: str, raw: Mapping[bytes, bytes]) -> Job:
    """A job record (HGETALL) as a Job; only the fields a Job has are decoded at all."""
    collection, recipient, edition = raw[b"collection"].decode(), raw[b"recipient"].decode(), int(raw[b"edition"])
    seed = raw.get(b"seed")
    error = raw.get(b"error")
    profile = raw.get(b"stage:profile")
    style = raw.get(b"stage:style")
    render = raw.get(b"stage:render")
    pin = raw.get(b"stage:pin")
    voucher = raw.get(b"stage:voucher")
    mint = raw.get(b"stage:mint")
    return Job(
        id=job_id,
        status=_STATUSES.get(raw[b"status"]) or JobStatus(raw[b"status"].decode()),
        tenant=raw[b"tenant"].decode(),
        recipient=recipient,
        collection=collection,
        context=_context.decode(raw[b"context"]) if b"context" in raw else {},
        edition=edition,
        # The seed is a pure function of the job: derived, so no second write can go missing.
        seed=int(seed) if seed is not None else derive_seed(collection, recipient, edition),
        request_id=raw[b"request_id"].decode(),
        created_at=float(raw[b"created_at"]),
        profile=_profile.decode(profile) if profile is not None else None,
        style=_style.decode(style) if style is not None else None,
        render=_render.decode(render) if render is not None else None,
        pin=_pin.decode(pin) if pin is not None else None,
        voucher=_voucher.decode(voucher) if voucher is not None else None,
        mint=_mint.decode(mint) if mint is not None else None,
        # In the hash's own order: the status API lists timings as Redis returns them.
        timings={_TIMINGS[key]: float(value) for key, value in raw.items() if key.startswith(_TIMING_PREFIX)},
        error=_error.decode(error) if error is not None else None,
        detail=raw.get(b"detail", b"").decode() or None,
        attempts=int(raw.get(b"attempts", 0)),
        payer=Payer.COLLECTOR if raw.get(b"payer") == b"collector" else Payer.SERVICE,
        voucher_ttl_s=int(raw[b"voucher_ttl_s"]) if b"voucher_ttl_s" in raw else None,
    )
