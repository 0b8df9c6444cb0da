"""Strict input checks that turn bad input into precise 4xx codes."""

from __future__ import annotations

import re
from typing import Any

from eth_utils.address import is_checksum_address, to_checksum_address

from api.errors import ApiError
from personalization.context import ContextError, ContextSchema

# Every pattern here is applied with `fullmatch`: `$` would also match before a trailing newline.
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


def is_ascii_digits(value: str) -> bool:
    """Only 0-9 (`str.isdigit` also takes ², ³ and other scripts' digits, which `int` then refuses or reads)."""
    return value.isascii() and value.isdigit()


def parse_recipient(value: str) -> str:
    """A 0x address; mixed case must carry a valid EIP-55 checksum; never the zero address."""
    if not _HEX_ADDRESS.fullmatch(value):
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
    if not _IDEMPOTENCY_KEY.fullmatch(value):
        raise ApiError(400, "invalid_idempotency_key", "Idempotency-Key must be 1-255 printable ASCII characters")
    return value


MAX_CONTEXT_KEYS = 32
MAX_CONTEXT_DEPTH = 4


def check_context(context: dict[str, Any], schema: ContextSchema) -> dict[str, Any]:
    """App context is small and shallow (it feeds features, not storage) and fits the collection's schema.

    A refusal is a 400 `invalid_context` whose detail names the field and the rule, and whose
    problem document carries both as `field` (`context.<key>`, or `context` for the whole
    object) and `rule` (see personalization.context.ContextError).
    """
    if len(context) > MAX_CONTEXT_KEYS:
        raise _refused(f"context has more than {MAX_CONTEXT_KEYS} keys", "context", "max_keys")

    def depth(value: object, level: int) -> int:
        if isinstance(value, dict):
            return max((depth(v, level + 1) for v in value.values()), default=level)
        if isinstance(value, list):
            return max((depth(v, level + 1) for v in value), default=level)
        return level

    if depth(context, 0) > MAX_CONTEXT_DEPTH:
        raise _refused(f"context nests deeper than {MAX_CONTEXT_DEPTH} levels", "context", "max_depth")
    try:
        return schema.validate(context)
    except ContextError as exc:
        raise _refused(str(exc), exc.field, exc.rule) from None


def _refused(detail: str, field: str, rule: str) -> ApiError:
    return ApiError(400, "invalid_context", detail, field=field, rule=rule)


def check_json_media_type(content_type: str | None, *, has_body: bool) -> None:
    """A body must be declared JSON: `application/json` or `application/<anything>+json`, in UTF-8.

    A request without a body has nothing to declare; any other type (text/plain, a form, none at
    all) is a 415 rather than a body parsed as JSON whatever its sender said it was.
    """
    if not has_body:
        return
    media_type, *parameters = (content_type or "").split(";")
    kind = media_type.strip().lower()
    subtype = kind.removeprefix("application/")
    json_type = kind != subtype and (subtype == "json" or (subtype.endswith("+json") and len(subtype) > 5))
    charset = "utf-8"
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    if not json_type or charset not in ("utf-8", "utf8"):
        raise ApiError(
            415,
            "unsupported_media_type",
            "send the body as Content-Type: application/json (UTF-8)",
            headers={"Accept-Post": "application/json"},
        )
