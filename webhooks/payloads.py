"""The body of an outbound status webhook."""

from __future__ import annotations

from typing import Any

from jobs.store import Job


def status_payload(job: Job, event_id: str, event_type: str, created_at: float) -> dict[str, Any]:
    """What a receiver gets: the end state of one mint, without internals."""
    mint: dict[str, Any] = {
        "id": job.id,
        "status": job.status,
        "recipient": job.recipient,
        "collection": job.collection,
        "edition": job.edition,
        "request_id": job.request_id,
    }
    if pin := job.stages.get("pin"):
        mint["token_uri"] = pin["token_uri"]
        mint["image_uri"] = pin["image_uri"]
    if minted := job.stages.get("mint"):
        mint.update({k: minted[k] for k in ("token_id", "tx_hash", "contract", "chain_id") if k in minted})
    if job.error:
        mint["error"] = {"code": job.error.get("code", "internal_error"), "message": job.error.get("message", "")}
    return {"id": event_id, "type": event_type, "created_at": created_at, "data": {"mint": mint}}
