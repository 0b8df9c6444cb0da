"""What every route module shares: the Idempotency-Key header, problem responses, typed state access."""

from __future__ import annotations

from typing import Annotated

from litestar.datastructures import State
from litestar.openapi import ResponseSpec
from litestar.params import HeaderParameter

from api.metrics import Metrics
from api.schemas import (
    Problem,
)
from config.clients import Core

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        required=False,
        description="Same key + same body → the same result; same key + another body → 409. Kept 24 h.",
    ),
]


JOB_ID_MAX = 64


DELIVERY_ID_MAX = 80


def problem_responses(*statuses: int) -> dict[int, ResponseSpec]:
    return {
        status: ResponseSpec(data_container=Problem, media_type="application/problem+json", description="Problem")
        for status in statuses
    }


def core_of(state: State) -> Core:
    core: Core = state.core
    return core


def metrics_of(state: State) -> Metrics:
    metrics: Metrics = state.metrics
    return metrics


def valid_id(value: str, limit: int, extra: str = "") -> bool:
    if not 0 < len(value) <= limit or not value.isascii():
        return False
    return value.isalnum() or all(c.isalnum() or c in extra for c in value)
