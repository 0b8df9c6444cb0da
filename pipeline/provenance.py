"""ERC-721 metadata (OpenSea attributes) with the provenance block that makes a token re-renderable."""

from __future__ import annotations

from typing import Any

from jobs.model import RenderStage
from personalization.orchestrator import Orchestration
from personalization.profile import WalletProfile
from personalization.style import NUMERIC_FIELDS, StyleDNA, canonical_json


def token_metadata(
    *,
    dna: StyleDNA,
    profile: WalletProfile,
    orchestration: Orchestration,
    render: RenderStage,
    image_cid: str,
    edition: int,
    base_seed: int,
    recipient: str,
    request_id: str,
) -> dict[str, Any]:
    params = orchestration.params
    attributes: list[dict[str, Any]] = [
        {"trait_type": "Persona", "value": orchestration.persona},
        {"trait_type": "Palette", "value": params.palette},
        {"trait_type": "Medium", "value": params.medium},
        {"trait_type": "Motif", "value": params.motif},
        {"trait_type": "Mood", "value": params.mood},
    ]
    for name in NUMERIC_FIELDS:
        bounds = dna.ranges[name]
        attributes.append(
            {
                "display_type": "number",
                "trait_type": name.replace("_", " ").title(),
                "value": getattr(params, name),
                "max_value": bounds.high,
            }
        )
    if isinstance(params.seal, str):  # drawn only where app context (e.g. a guild) set one
        attributes.append({"trait_type": "Seal", "value": params.seal})
    attributes.append({"display_type": "number", "trait_type": "Edition", "value": edition})
    name, description = token_words(dna, orchestration, recipient, edition)
    return {
        "name": name,
        "description": description,
        "image": f"ipfs://{image_cid}",
        "attributes": attributes,
        "provenance": {
            "collection": dna.collection_id,
            "style_dna_sha256": dna.sha256(),
            "recipient": recipient,
            "edition": edition,
            "request_id": request_id,
            # seed = hash(collection, recipient, edition); the gate may have moved on to a derived seed.
            "base_seed": base_seed,
            "seed": render.seed,
            "renderer": render.renderer,
            "renderer_version": render.renderer_version,
            "width": render.width,
            "height": render.height,
            "render_attempts": render.attempts,
            "params": params.to_dict(),
            "params_sha256": params.sha256(),
            "prompt": dna.prompt(params),
            "negative_prompt": dna.negative_prompt(),
            "orchestrator": orchestration.provenance,
            # Who wrote the name and description (model | clamped | replaced | template) and every change.
            **(
                {"words": {"source": orchestration.words.source, "reasons": list(orchestration.words.reasons)}}
                if orchestration.words is not None
                else {}
            ),
            "image_sha256": render.file_sha256,
            "pixel_sha256": render.pixel_sha256,
            **({"diffusion": render.diffusion} if render.diffusion is not None else {}),
            "profile_chain_id": profile.chain_id,
            "profile_block": profile.block_number,
        },
    }


def token_words(dna: StyleDNA, orchestration: Orchestration, recipient: str, edition: int) -> tuple[str, str]:
    """The token's name (the orchestrator's words + " #<edition>") and description.

    An orchestration saved before words existed keeps the name and description its token
    would have had then: a retried old job pins the metadata it always would have.
    """
    words = orchestration.words
    if words is None:
        return f"{dna.name} · {recipient[:6]}…{recipient[-4:]} #{edition}", dna.description
    return f"{words.name} #{edition}", words.description


def metadata_bytes(metadata: dict[str, Any]) -> bytes:
    """Canonical bytes: what gets pinned is exactly what gets hashed."""
    return canonical_json(metadata)
