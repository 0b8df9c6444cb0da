"""Inbound signed webhooks: signature check, event parsing, replay dedup."""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Any

from api.errors import ApiError
from api.validation import is_ascii_digits
from config.settings import WebhookSource
from webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

INBOUND_DEDUP_TTL_S = 7 * 24 * 3600


MAX_EVENT_ID = 200


def verify_signature(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, *, tolerance_s: int, now: float
) -> None:
    """Raise a 401 problem unless the MAC matches and the timestamp is inside the window."""
    if not timestamp or not signature:
        raise ApiError(401, "missing_signature", f"send {TIMESTAMP_HEADER} and {SIGNATURE_HEADER}")
    if not is_ascii_digits(timestamp) or len(timestamp) > 12:
        raise ApiError(401, "invalid_signature", f"{TIMESTAMP_HEADER} must be unix seconds")
    expected = sign(secret, timestamp, body)
    candidates = [part.strip()[3:] for part in signature.split(",") if part.strip().startswith("v1=")]
    # Compare every candidate (constant time each) so timing says nothing about which matched.
    matched = False
    for candidate in candidates[:8]:
        matched |= hmac.compare_digest(candidate.encode(), expected.encode())
    if not matched:
        raise ApiError(401, "invalid_signature", "the signature does not match the body and timestamp")
    if abs(now - int(timestamp)) > tolerance_s:
        raise ApiError(401, "stale_timestamp", f"the timestamp is outside the {tolerance_s} s window")


def json_pointer(document: object, pointer: str) -> object:
    """RFC 6901 lookup; None where the path does not exist."""
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        return None
    node = document
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and is_ascii_digits(token) and len(token) < 10 and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


@dataclass(frozen=True)
class InboundEvent:
    """A verified event that maps to a mint."""

    event_id: str
    event_type: str
    mapped: bool  # False: a type this source does not turn into mints (acknowledged, ignored)
    recipient: object = None  # whatever the event holds there: checked as an address by the mint
    collection: str = ""
    context: dict[str, Any] | None = None


def parse_inbound(source: WebhookSource, body: bytes) -> InboundEvent:
    """The verified body → the mint it asks for."""
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder goes
        raise ApiError(400, "invalid_json", "the webhook body is not JSON") from None
    if not isinstance(event, dict):
        raise ApiError(400, "invalid_webhook_event", "the webhook body must be a JSON object")
    event_id, event_type = event.get("id"), event.get("type")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_EVENT_ID or not event_id.isprintable():
        raise ApiError(400, "invalid_webhook_event", "the event needs an 'id' string (1-200 characters)")
    if not isinstance(event_type, str):
        raise ApiError(400, "invalid_webhook_event", "the event needs a 'type' string")
    mapping = source.events.get(event_type)
    if mapping is None:
        return InboundEvent(event_id, event_type, mapped=False)
    recipient = json_pointer(event, mapping.recipient)
    context = json_pointer(event, mapping.context) if mapping.context else None
    if context is not None and not isinstance(context, dict):
        raise ApiError(400, "invalid_webhook_event", f"{mapping.context} must be an object")
    return InboundEvent(event_id, event_type, True, recipient, mapping.collection, context or {})
