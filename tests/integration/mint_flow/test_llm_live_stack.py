"""The LLM path through the live stack: API + workers + minter with PERSONAMINT_LLM_BASE_URL set.

Once against the OpenAI-protocol shim (tests/support/openai_server.py: a scripted answer, so the
metadata must carry exactly the model's name and description), once against the real local
model (`personamint llm-server`'s llama.cpp + Gemma 3 270M: whatever it writes, the token's words
come from that answer or from the template with the reason recorded, and never show the address).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from devstack.local import deployed_services
from personalization.orchestrator.local_llm import INSTALL_HINT, LocalLlmServer, gguf_path, missing_local_llm_packages
from personalization.words import address_fragment
from tests.support.openai_server import OpenAIServer
from tests.support.polling import wait_for_job
from tests.support.stack import STACK_ENV, issue_api_key

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
NAME = "Quiet Rings of Patience"
DESCRIPTION = "Slow golden rings for a wallet that keeps its own counsel."
CHOICES = {"palette": "gallery", "medium": "oil", "motif": "rings", "mood": "serene"}


def _stack(root: Path, llm_url: str, model: str) -> Iterator[httpx.Client]:
    extra = {
        **STACK_ENV,
        "PERSONAMINT_LLM_BASE_URL": llm_url,
        "PERSONAMINT_LLM_MODEL": model,
        "PERSONAMINT_LLM_TIMEOUT_S": "240",
    }
    with deployed_services(root, extra=extra) as deployed:
        key = asyncio.run(issue_api_key(deployed.redis.url, "studio"))
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=deployed.services.base_url, headers=headers, timeout=60) as client:
            yield client


def _minted(client: httpx.Client, recipient: str) -> tuple[dict[str, Any], dict[str, Any]]:
    response = client.post("/v1/mints", json={"recipient": recipient})
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"], timeout_s=600)
    assert job["status"] == "confirmed", job
    metadata: dict[str, Any] = client.get(job["metadata_url"]).json()
    return job, metadata


def test_a_mint_carries_the_model_s_name_and_description(tmp_path: Path) -> None:
    with OpenAIServer(arguments=json.dumps({**CHOICES, "name": NAME, "description": DESCRIPTION})) as shim:
        for client in _stack(tmp_path, shim.base_url, shim.model):
            job, metadata = _minted(client, Account.create().address)
            assert metadata["name"] == f"{NAME} #{job['edition']}"
            assert metadata["description"] == DESCRIPTION
            orchestrator = metadata["provenance"]["orchestrator"]
            assert orchestrator["orchestrator"] == "llm"
            assert orchestrator.get("fallback") is None
            assert metadata["provenance"]["words"]["source"] == "model"
            assert {k: job["style"][k] for k in CHOICES} == CHOICES
        assert shim.requests, "the worker never asked the model"


def test_the_real_local_model_names_a_token_through_the_stack(tmp_path: Path) -> None:
    missing = missing_local_llm_packages()
    if missing:
        pytest.fail(f"the local LLM is part of the test suite: {', '.join(missing)} not importable; {INSTALL_HINT}")
    with LocalLlmServer(gguf_path(tmp_path / "gguf"), log_path=tmp_path / "llm.log") as gemma:
        for client in _stack(tmp_path / "stack", gemma.base_url, gemma.alias):
            recipient = Account.create().address
            job, metadata = _minted(client, recipient)
    words = metadata["provenance"]["words"]
    orchestrator = metadata["provenance"]["orchestrator"]
    # The model answered (a fallback says why, as provenance must), and its words were checked.
    assert orchestrator["orchestrator"] in ("llm", "rule-based")
    if orchestrator["orchestrator"] == "llm":
        assert orchestrator["model"] == gemma.alias
        assert words["source"] in ("model", "clamped", "replaced")
    else:
        assert orchestrator.get("fallback")
    if words["source"] in ("clamped", "replaced"):
        assert words["reasons"]
    name, description = metadata["name"], metadata["description"]
    assert name.endswith(f" #{job['edition']}")
    assert len(name) >= 3
    assert len(description) <= 120
    assert not address_fragment(name, recipient)
    assert not address_fragment(description, recipient)
