"""The body of an outbound status webhook."""

from __future__ import annotations

from typing import Any

from jobs.model import Job


def status_payload(job: Job, event_id: str, event_type: str, created_at: float) -> dict[str, Any]:
    """What a receiver gets: the end state of one mint (or its voucher, ready), without internals."""
    mint: dict[str, Any] = {
        "id": job.id,
        "status": str(job.status),
        "recipient": job.recipient,
        "collection": job.collection,
        "edition": job.edition,
        "request_id": job.request_id,
    }
    if job.pin is not None:
        mint["token_uri"] = job.pin.token_uri
        mint["image_uri"] = job.pin.image_uri
    if job.mint is not None:
        mint.update(
            token_id=job.mint.token_id,
            tx_hash=job.mint.tx_hash,
            contract=job.mint.contract,
            chain_id=job.mint.chain_id,
        )
    if (voucher := job.voucher) is not None and job.mint is None:
        # What the collector's wallet sends (the API's status shows the same voucher).
        mint["voucher"] = {
            "signature": voucher.signature,
            "deadline": voucher.deadline,
            "price_wei": str(voucher.price_wei),
            "transaction": {"to": voucher.contract, "data": voucher.call_data, "value": hex(voucher.price_wei)},
            "chain_id": voucher.chain_id,
        }
    if job.error is not None:
        mint["error"] = {"code": job.error.code, "message": job.error.message}
    return {"id": event_id, "type": event_type, "created_at": created_at, "data": {"mint": mint}}
