"""App context (what a game server knows about its player) checked against the collection's schema.

A collection file may declare a `[context]` table:

    [context]
    max_bytes = 2048                      # canonical JSON size cap
    [context.fields.achievements]
    type = "list"                         # string | integer | number | boolean | enum | list
    items = "string"                      # list element type (string | integer | number | boolean)
    max_items = 64
    max_length = 48                       # per string
    [context.fields.hours]
    type = "integer"
    min = 0
    max = 100000
    [context.fields.class]
    type = "enum"
    values = ["mage", "warrior"]

Keys it does not name are refused, as are wrong types and out-of-range values: the
caller gets a concise error naming the field and the rule it broke (ContextError.field
and .rule) instead of a silently trimmed context. A collection with no `[context]` table
accepts any flat-ish JSON object under the default size cap.

A key whose value is empty (`[]`, or a string of only whitespace) says nothing: validate
drops it, so `{"achievements": []}` is the same request as `{}` and as no context at all.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from personalization.errors import PersonalizationError, StyleDNAError

DEFAULT_MAX_BYTES = 4096
MAX_DEPTH = 4
FIELD_TYPES = ("string", "integer", "number", "boolean", "enum", "list")
ITEM_TYPES = ("string", "integer", "number", "boolean")


class ContextError(PersonalizationError):
    """App context does not fit the collection's context schema.

    `field` is where: `context.<key>` for one key, `context` for the whole object; `rule` is
    which check refused it (type, enum, min, max, max_length, max_items, unknown_key,
    required, max_bytes, max_depth, object, json).
    """

    code = "invalid_context"

    def __init__(self, detail: str, *, field: str = "context", rule: str = "schema") -> None:
        super().__init__(detail)
        self.field = field
        self.rule = rule


class ContextSchemaError(StyleDNAError):
    """A collection's `[context]` table is itself malformed."""


@dataclass(frozen=True)
class ContextField:
    name: str
    type: str
    items: str | None = None
    values: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    max_items: int = 64
    max_length: int = 64
    required: bool = False


@dataclass(frozen=True)
class ContextSchema:
    """What app context a collection accepts; `open` when the collection declares no fields."""

    fields: dict[str, ContextField] = field(default_factory=dict)
    max_bytes: int = DEFAULT_MAX_BYTES
    open: bool = True

    def validate(self, context: Any) -> dict[str, Any]:
        """The context if it fits; raises ContextError naming the first key that does not."""
        if context is None:
            context = {}
        if not isinstance(context, dict):
            raise ContextError("context must be a JSON object", rule="object")
        try:
            encoded = json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ContextError(f"context is not plain JSON: {exc}", rule="json") from exc
        size = len(encoded.encode())
        if size > self.max_bytes:
            raise ContextError(
                f"context is {size} bytes; this collection accepts at most {self.max_bytes}", rule="max_bytes"
            )
        if _depth(context) > MAX_DEPTH:
            raise ContextError(f"context nests deeper than {MAX_DEPTH} levels", rule="max_depth")
        if self.open:
            return without_empty(context)
        unknown = sorted(set(context) - set(self.fields))
        if unknown:
            raise ContextError(
                f"context keys not in this collection's schema: {unknown[:5]}",
                field=f"context.{unknown[0]}",
                rule="unknown_key",
            )
        for spec in self.fields.values():
            if spec.required and spec.name not in context:
                raise ContextError(f"context.{spec.name} is required", field=f"context.{spec.name}", rule="required")
        for name, value in context.items():
            _check(self.fields[name], value)
        return without_empty(context)


def is_empty(value: Any) -> bool:
    """An empty list or a blank string: a context value that says nothing."""
    return (isinstance(value, list) and not value) or (isinstance(value, str) and not value.strip())


def without_empty(context: dict[str, Any]) -> dict[str, Any]:
    """The context less its empty values, so that `{"achievements": []}` is the same request as `{}`."""
    return {key: value for key, value in context.items() if not is_empty(value)}


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _scalar_ok(kind: str, value: Any) -> bool:
    if kind == "string":
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return False


def _check(spec: ContextField, value: Any) -> None:
    where = f"context.{spec.name}"
    if spec.type == "enum":
        if not isinstance(value, str) or value not in spec.values:
            raise ContextError(f"{where} must be one of {list(spec.values)}", field=where, rule="enum")
        return
    if spec.type == "list":
        if not isinstance(value, list):
            raise ContextError(f"{where} must be a list", field=where, rule="type")
        if len(value) > spec.max_items:
            raise ContextError(
                f"{where} has {len(value)} items; at most {spec.max_items}", field=where, rule="max_items"
            )
        for item in value:
            _check_scalar(spec, spec.items or "string", item, where, f"{where}[]")
        return
    _check_scalar(spec, spec.type, value, where, where)


def _check_scalar(spec: ContextField, kind: str, value: Any, field: str, where: str) -> None:
    if not _scalar_ok(kind, value):
        raise ContextError(f"{where} must be of type {kind}", field=field, rule="type")
    if kind == "string" and len(value) > spec.max_length:
        raise ContextError(f"{where} is longer than {spec.max_length} characters", field=field, rule="max_length")
    if kind in ("integer", "number"):
        if spec.minimum is not None and value < spec.minimum:
            raise ContextError(f"{where} must be >= {spec.minimum:g}", field=field, rule="min")
        if spec.maximum is not None and value > spec.maximum:
            raise ContextError(f"{where} must be <= {spec.maximum:g}", field=field, rule="max")


def _positive_int(raw: dict[str, Any], key: str, default: int, where: str) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ContextSchemaError(f"{where}.{key} must be a positive integer")
    return value


def _bound(raw: dict[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ContextSchemaError(f"{where}.{key} must be a number")
    return float(value)


def parse_context_schema(raw: Any, where: str) -> ContextSchema:
    """Validate a collection's `[context]` table (None: an open schema with the default cap)."""
    if raw is None:
        return ContextSchema()
    if not isinstance(raw, dict):
        raise ContextSchemaError(f"{where}: 'context' must be a table")
    max_bytes = _positive_int(raw, "max_bytes", DEFAULT_MAX_BYTES, f"{where}: context")
    fields_raw = raw.get("fields")
    if fields_raw is None:
        return ContextSchema(max_bytes=max_bytes)
    if not isinstance(fields_raw, dict):
        raise ContextSchemaError(f"{where}: context.fields must be a table")
    fields: dict[str, ContextField] = {}
    for name, spec in fields_raw.items():
        spot = f"{where}: context.fields.{name}"
        if not isinstance(spec, dict):
            raise ContextSchemaError(f"{spot} must be a table")
        kind = spec.get("type")
        if kind not in FIELD_TYPES:
            raise ContextSchemaError(f"{spot}.type must be one of {FIELD_TYPES}")
        items = spec.get("items", "string") if kind == "list" else None
        if kind == "list" and items not in ITEM_TYPES:
            raise ContextSchemaError(f"{spot}.items must be one of {ITEM_TYPES}")
        values: tuple[str, ...] = ()
        if kind == "enum":
            raw_values = spec.get("values")
            if not (isinstance(raw_values, list) and raw_values and all(isinstance(v, str) for v in raw_values)):
                raise ContextSchemaError(f"{spot}.values must be a non-empty list of strings")
            values = tuple(raw_values)
        minimum, maximum = _bound(spec, "min", spot), _bound(spec, "max", spot)
        if minimum is not None and maximum is not None and minimum > maximum:
            raise ContextSchemaError(f"{spot}: min > max")
        required = spec.get("required", False)
        if not isinstance(required, bool):
            raise ContextSchemaError(f"{spot}.required must be true or false")
        fields[name] = ContextField(
            name=name,
            type=kind,
            items=items,
            values=values,
            minimum=minimum,
            maximum=maximum,
            max_items=_positive_int(spec, "max_items", 64, spot),
            max_length=_positive_int(spec, "max_length", 64, spot),
            required=required,
        )
    return ContextSchema(fields=fields, max_bytes=max_bytes, open=False)
