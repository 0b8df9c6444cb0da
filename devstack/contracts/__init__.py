"""The dev stack's sample contracts (demo wallets' ERC-20/721/1155, DEX, smart wallet) and their committed artifact.

Sources in `samples/`, compiled by `python -m chain.contracts.build` with the service's
pinned solc into `Samples.json` (package data); the seeder deploys from that artifact.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

SAMPLES_ARTIFACT_NAME = "Samples.json"


@functools.cache
def _samples_text() -> str:
    return resources.files(__package__).joinpath(SAMPLES_ARTIFACT_NAME).read_text(encoding="utf-8")


def sample_contracts() -> dict[str, Any]:
    """The committed sample-contracts artifact (a fresh dict per call; callers may mutate it)."""
    artifact: dict[str, Any] = json.loads(_samples_text())
    return artifact
