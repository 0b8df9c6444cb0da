"""The renderer's reading of StyleParams: known treatments, clamped numbers, checked request."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from msgspec import UNSET

from personalization.style import StyleParams
from render.errors import InvalidRenderRequest

# The treatments this renderer draws, by the names StyleParams use. Order matters: an
# unknown name hashes to a position in these tuples, so new names are only appended.
MEDIA = ("ink", "watercolor", "risograph", "neon", "blueprint", "oil")
MOTIFS = ("flow", "rings", "grid", "constellation", "terrain", "shards")
MOODS = ("serene", "energetic", "mysterious", "playful", "austere", "opulent")

# Numeric params are clamped to the span the renderer was designed for, so a
# collection with wider ranges still renders (and in bounded time).
_SEAL = re.compile(r"[0-9a-f]{8}")
_SPANS = {"complexity": (1, 10), "energy": (0, 100), "symmetry": (0, 100), "grain": (0, 100), "hue_shift": (-180, 180)}


def resolve_choice(value: str, known: Sequence[str]) -> str:
    """A known name maps to itself; any other to a treatment picked by a stable hash."""
    if value in known:
        return value
    digest = hashlib.sha256(value.encode("utf-8")).digest()
    return known[int.from_bytes(digest[:8], "big") % len(known)]


@dataclass(frozen=True)
class Style:
    """StyleParams as this renderer reads them: known treatments, numbers clamped to its spans."""

    medium: str
    motif: str
    mood: str
    complexity: int
    energy: float  # 0..1
    symmetry: float  # 0..1
    grain: float  # 0..1
    hue_shift: int
    seal: int | None = None  # StyleParams.seal's 32 bits; None: no seal

    @classmethod
    def from_params(cls, params: StyleParams) -> Style:
        numbers: dict[str, int] = {}
        for name, (low, high) in _SPANS.items():
            value = getattr(params, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidRenderRequest(f"{name} must be an integer, got {value!r}")
            numbers[name] = max(low, min(high, value))
        for name in ("palette", "medium", "motif", "mood"):
            if not isinstance(getattr(params, name), str):
                raise InvalidRenderRequest(f"{name} must be a string")
        seal = params.seal
        if seal is not UNSET and not (isinstance(seal, str) and _SEAL.fullmatch(seal)):
            raise InvalidRenderRequest(f"seal must be 8 lowercase hex digits, got {seal!r}")
        return cls(
            medium=resolve_choice(params.medium, MEDIA),
            motif=resolve_choice(params.motif, MOTIFS),
            mood=resolve_choice(params.mood, MOODS),
            complexity=numbers["complexity"],
            energy=numbers["energy"] / 100.0,
            symmetry=numbers["symmetry"] / 100.0,
            grain=numbers["grain"] / 100.0,
            hue_shift=numbers["hue_shift"],
            seal=int(seal, 16) if isinstance(seal, str) else None,
        )


def check_request(seed: int, width: int, height: int) -> None:
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InvalidRenderRequest(f"seed must be a non-negative integer, got {seed!r}")
    for name, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or isinstance(value, bool) or not 16 <= value <= 8192:
            raise InvalidRenderRequest(f"{name} must be an integer in [16, 8192], got {value!r}")
