"""The mint job record, typed: its status, its stages in order, each stage's saved output, its error.

The first two stages' outputs are the libraries' own values, kept as they are: the profile stage
saves personalization's `WalletProfile`, the style stage its `Orchestration` (the StyleParams and
how they were chosen). The rest are the structs below. jobs/codec.py turns all of them into the
Redis record and back.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import msgspec

from personalization.orchestrator import Orchestration
from personalization.profile import WalletProfile


class JobStatus(enum.StrEnum):
    """Where a job is; the strings are what Redis, the events and the API carry."""

    QUEUED = "queued"
    PROFILING = "profiling"
    STYLING = "styling"
    RENDERING = "rendering"
    PINNING = "pinning"
    MINTING = "minting"
    # The collector pays: the signed voucher is out, waiting for the collector's transaction.
    VOUCHER_READY = "voucher_ready"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    EXPIRED = "expired"  # the voucher's deadline passed on chain unused

    @property
    def ended(self) -> bool:
        """Confirmed, failed or expired: nothing moves the job again (the job scripts refuse it)."""
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.CONFIRMED, JobStatus.FAILED, JobStatus.EXPIRED})

# Statuses whose change is also an outbound webhook: the ends, and a voucher the caller must pass on.
NOTIFIED = TERMINAL | {JobStatus.VOUCHER_READY}

# The way to a confirmed token the service pays for, in order (what a progress bar shows;
# `failed` may end any step; a collector-paid job waits in `voucher_ready` before `confirmed`).
PROGRESS = tuple(
    status for status in JobStatus if status not in (JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.VOUCHER_READY)
)


class Payer(enum.StrEnum):
    """Who pays for the mint transaction."""

    SERVICE = "service"  # the service's minter sends it
    COLLECTOR = "collector"  # the collector sends mintWithVoucher with the voucher the service signed


class Stage(enum.StrEnum):
    """A step whose output is saved, so a retried job resumes at the first unfinished one."""

    PROFILE = "profile"
    STYLE = "style"
    RENDER = "render"
    PIN = "pin"
    VOUCHER = "voucher"
    MINT = "mint"

    @property
    def status(self) -> JobStatus:
        """The job's status while this stage runs."""
        return _RUNNING[self]


_RUNNING = {
    Stage.PROFILE: JobStatus.PROFILING,
    Stage.STYLE: JobStatus.STYLING,
    Stage.RENDER: JobStatus.RENDERING,
    Stage.PIN: JobStatus.PINNING,
    Stage.VOUCHER: JobStatus.MINTING,
    Stage.MINT: JobStatus.MINTING,
}

# The pipeline worker's stages; the minter runs the last one.
PIPELINE_STAGES = (Stage.PROFILE, Stage.STYLE, Stage.RENDER, Stage.PIN)


class RenderStage(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The rendered image, already in the local content-addressed store, and how it was made."""

    image_cid: str
    renderer: str
    renderer_version: str
    seed: int  # the seed the quality gate accepted (the job's seed, or one derived from it)
    attempts: int
    width: int
    height: int
    file_sha256: str
    pixel_sha256: str
    synth_seconds: float
    encode_seconds: float
    # The diffusion renderer's provenance (model, weights hash, scheduler, stack), verbatim; absent
    # for the procedural renderer.
    diffusion: dict[str, Any] | None = None


class PinStage(msgspec.Struct, frozen=True, kw_only=True):
    """The image and its metadata, pinned."""

    image_cid: str
    metadata_cid: str
    token_uri: str
    image_uri: str


class VoucherStage(msgspec.Struct, frozen=True, kw_only=True):
    """The EIP-712 voucher the service signed for a collector-paid mint, and the transaction to send."""

    recipient: str
    request_id: str  # 0x…
    digest: str  # 0x… sha2-256 digest of the metadata block
    codec: int
    price_wei: int
    deadline: int  # unix seconds: the voucher is void in any block after it
    signature: str  # 0x…, 65 bytes
    signer: str
    contract: str
    chain_id: int
    call_data: str  # 0x… mintWithVoucher(voucher, signature): send it with `price_wei` as the value


class MintStage(msgspec.Struct, frozen=True, kw_only=True):
    """The token on chain."""

    token_id: int
    tx_hash: str
    block_number: int
    gas_used: int | None  # this token's share of the (batch) transaction's gas; None when found minted
    batch_size: int
    contract: str
    chain_id: int
    already_minted: bool  # found on chain by its request id: an earlier attempt had minted it


StageOutput = WalletProfile | Orchestration | RenderStage | PinStage | VoucherStage | MintStage


def stage_of(output: StageOutput) -> Stage:
    """The stage an output belongs to."""
    match output:
        case WalletProfile():
            return Stage.PROFILE
        case Orchestration():
            return Stage.STYLE
        case RenderStage():
            return Stage.RENDER
        case PinStage():
            return Stage.PIN
        case VoucherStage():
            return Stage.VOUCHER
        case MintStage():
            return Stage.MINT


class JobError(msgspec.Struct, frozen=True):
    """A failed job's error: a library's stable code and a message without secrets."""

    # The defaults are what a record without them has always been read as.
    code: str = "internal_error"
    message: str = ""


@dataclass
class Job:
    """A job record as stored: the request, the stage outputs saved so far, and how it went."""

    id: str
    status: JobStatus
    tenant: str
    recipient: str
    collection: str
    context: dict[str, Any]  # the app context the caller sent (a JSON object, checked on accept)
    edition: int
    seed: int
    request_id: str
    created_at: float
    profile: WalletProfile | None = None
    style: Orchestration | None = None
    render: RenderStage | None = None
    pin: PinStage | None = None
    voucher: VoucherStage | None = None
    mint: MintStage | None = None
    timings: dict[Stage, float] = field(default_factory=dict)  # seconds per finished stage
    error: JobError | None = None
    detail: str | None = None
    attempts: int = 0
    payer: Payer = Payer.SERVICE
    voucher_ttl_s: int | None = None  # the caller's ask for a shorter voucher than its collection's

    def record(self, output: StageOutput, seconds: float) -> None:
        """Keep a stage's output and timing on this copy, as saving it did in Redis."""
        match output:
            case WalletProfile():
                self.profile = output
            case Orchestration():
                self.style = output
            case RenderStage():
                self.render = output
            case PinStage():
                self.pin = output
            case VoucherStage():
                self.voucher = output
            case MintStage():
                self.mint = output
        self.timings[stage_of(output)] = seconds
