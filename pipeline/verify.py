"""`personamint verify`: re-render a token from its on-chain metadata and compare the pixel hash."""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import httpx

from chain.contract import PersonaMint
from chain.web3 import connect_web3
from ipfs.cid import cid_for_bytes
from personalization.style import StyleDNA, StyleParams
from render.procedural import RENDERER, RENDERER_VERSION, render_procedural


@dataclass(frozen=True)
class VerifyReport:
    token_id: int
    token_uri: str
    ok: bool
    checks: dict[str, bool]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "token_id": self.token_id,
            "token_uri": self.token_uri,
            "ok": self.ok,
            "checks": self.checks,
            "notes": self.notes,
        }


async def _fetch(client: httpx.AsyncClient, cid: str) -> bytes:
    response = await client.get(f"/ipfs/{cid}")
    response.raise_for_status()
    return response.content


async def verify_token(
    *, rpc_url: str, contract_address: str, token_id: int, gateway_url: str, collections: dict[str, StyleDNA]
) -> VerifyReport:
    """Every claim in the metadata checked against the chain, IPFS and a fresh render."""
    w3 = connect_web3(rpc_url)
    try:
        token_uri = await PersonaMint(w3, contract_address).token_uri(token_id)
    finally:
        await w3.provider.disconnect()
    checks: dict[str, bool] = {}
    notes: list[str] = []
    metadata_cid = token_uri.removeprefix("ipfs://")
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as client:
        metadata_bytes = await _fetch(client, metadata_cid)
        checks["metadata_cid"] = cid_for_bytes(metadata_bytes) == metadata_cid
        metadata = json.loads(metadata_bytes)
        image_cid = metadata["image"].removeprefix("ipfs://")
        image = await _fetch(client, image_cid)
    provenance = metadata["provenance"]
    checks["image_cid"] = cid_for_bytes(image) == image_cid
    checks["image_sha256"] = hashlib.sha256(image).hexdigest() == provenance["image_sha256"]
    params = StyleParams.from_dict(provenance["params"])
    checks["params_sha256"] = params.sha256() == provenance["params_sha256"]
    dna = collections.get(provenance["collection"])
    if dna is None:
        notes.append(f"collection {provenance['collection']!r} is not configured here; cannot re-render")
        checks["rerender_pixels"] = False
    else:
        if dna.sha256() != provenance["style_dna_sha256"]:
            notes.append("this collection's style DNA changed since the mint; palette may differ")
        if (provenance["renderer"], provenance["renderer_version"]) != (RENDERER, RENDERER_VERSION):
            notes.append(
                f"minted with {provenance['renderer']} {provenance['renderer_version']}, "
                f"this build has {RENDERER} {RENDERER_VERSION}"
            )
        result = await asyncio.to_thread(
            render_procedural,
            params,
            dna.palettes[params.palette],
            int(provenance["seed"]),
            int(provenance["width"]),
            int(provenance["height"]),
        )
        # Pixels, not PNG bytes: zlib builds may encode the same pixels differently.
        checks["rerender_pixels"] = result.pixel_sha256 == provenance["pixel_sha256"]
        if result.file_sha256 != provenance["image_sha256"]:
            notes.append("PNG bytes differ (another zlib build); pixels decide")
    return VerifyReport(token_id, token_uri, all(checks.values()), checks, notes)
