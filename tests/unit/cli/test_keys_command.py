"""`personamint keys create` refuses an unsafe tenant name before anything is stored."""

from __future__ import annotations

import pytest

from cli.main import main


def test_keys_create_refuses_an_unsafe_tenant_name(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nothing listens on port 1: the name is refused before any Redis command is sent.
    monkeypatch.setenv("PERSONAMINT_REDIS_URL", "redis://127.0.0.1:1/0")
    with pytest.raises(SystemExit, match="tenant name"):
        main(["keys", "create", "acme:key:x"])
