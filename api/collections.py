"""Load every collection file at start-up; a bad file stops the service with its name and field."""

from __future__ import annotations

from pathlib import Path

from personalization.style import StyleDNA, load_style_dna


def load_collections(directory: Path) -> dict[str, StyleDNA]:
    collections: dict[str, StyleDNA] = {}
    for path in sorted(directory.glob("*.toml")):
        dna = load_style_dna(path)
        if dna.collection_id in collections:
            raise ValueError(f"{path}: collection id {dna.collection_id!r} is defined twice")
        collections[dna.collection_id] = dna
    if not collections:
        raise ValueError(f"{directory}: no collection files (*.toml)")
    return collections
