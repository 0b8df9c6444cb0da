"""Strict input checks that turn bad input into precise 4xx codes."""

from __future__ import annotations

import re

from eth_utils.address import is_checksum_address, to_checksum_address

from api.errors import ApiError

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def parse_recipient(value: str) -> str:
    """A 0x address; mixed case must carry a valid EIP-55 checksum; never the zero address."""
    if not _HEX_ADDRESS.match(value):
        raise ApiError(400, "invalid_address", "recipient must be 0x followed by 40 hex digits")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise ApiError(400, "invalid_address_checksum", "recipient has mixed case but a wrong EIP-55 checksum")
    if int(body, 16) == 0:
        raise ApiError(400, "zero_address", "tokens cannot be minted to the zero address")
    return to_checksum_address(value)


def parse_idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.match(value):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters")
    return value


MAX_CONTEXT_KEYS = 32
MAX_CONTEXT_DEPTH = 4


def check_context(context: dict[str, object]) -> dict[str, object]:
    """App context is small and shallow: it feeds features, not storage."""
    if len(context) > MAX_CONTEXT_KEYS:
        raise ApiError(400, "invalid_context", f"context has more than {MAX_CONTEXT_KEYS} keys")

    def depth(value: object, level: int) -> int:
        if isinstance(value, dict):
            return max((depth(v, level + 1) for v in value.values()), default=level)
        if isinstance(value, list):
            return max((depth(v, level + 1) for v in value), default=level)
        return level

    if depth(context, 0) > MAX_CONTEXT_DEPTH:
        raise ApiError(400, "invalid_context", f"context nests deeper than {MAX_CONTEXT_DEPTH} levels")
    return context
