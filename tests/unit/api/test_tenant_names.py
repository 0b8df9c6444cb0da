"""Tenant names are checked where they are made: API keys and inbound webhook sources."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from api.keys import KeyStore
from config.settings import WebhookSource


class NoRedis:
    """A refused name never reaches Redis: any call here fails the test."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"Redis was used ({name}) for a refused tenant")


@pytest.mark.parametrize("tenant", ["acme:key:x", "", "Acme", "wallet:0x" + "ab" * 20, "a" * 65, "acme\n"])
async def test_api_keys_refuse_unsafe_tenant_names(tenant: str) -> None:
    redis: Any = NoRedis()
    with pytest.raises(ValueError, match="tenant name"):
        await KeyStore(redis).create(tenant)


def test_webhook_sources_refuse_unsafe_tenant_names() -> None:
    assert WebhookSource(secret="s", tenant="game-studio").tenant == "game-studio"  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="tenant"):
        WebhookSource(secret="s", tenant="acme:key:x")  # type: ignore[arg-type]
