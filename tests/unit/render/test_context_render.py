"""App context reaches the pixels: every declared context field of the default collection, and the seal."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from personalization.context_style import seal_of
from personalization.orchestrator.rule_based import RuleBasedOrchestrator
from personalization.style import StyleParams, load_style_dna
from render.errors import InvalidRenderRequest
from render.procedural import render_procedural, synthesize
from render.procedural.canvas import Canvas
from render.procedural.seal import seal_window
from tests.support.archetypes import ARCHETYPES

ROOT = Path(__file__).resolve().parents[3]
DNA = load_style_dna(ROOT / "collections" / "default.toml")
SCHEMA = DNA.context_schema
SIZE = 128
# As tests/unit/render/test_procedural.py: a mean change of 6 levels over the frame is visible.
VISIBLE_MEAN_DIFF = 6.0
MOVING = {"achievements": ["first-blood"], "hours": 300, "level": 50, "guild": "owls"}
WALLETS = {name: replace(ARCHETYPES[name], context={}) for name in ("newcomer", "gamer")}


def params_for(wallet: str, context: dict[str, Any]) -> StyleParams:
    profile = replace(WALLETS[wallet], context=SCHEMA.validate(context))
    return asyncio.run(RuleBasedOrchestrator().choose(profile, DNA)).params


def render(params: StyleParams, size: int = SIZE) -> np.ndarray:
    return synthesize(params, DNA.palettes[params.palette], 7, size, size)


def mean_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def seal_box(size: int) -> tuple[slice, slice]:
    """The pixels the seal may cover on a square frame (bottom-right)."""
    return seal_window(Canvas.make(size, size))


def test_every_declared_context_field_is_tested_here() -> None:
    assert sorted([*MOVING, "class"]) == sorted(SCHEMA.fields)


@pytest.mark.parametrize("wallet", sorted(WALLETS))
@pytest.mark.parametrize("field", sorted(set(MOVING) - {"guild"}))
def test_every_numeric_context_field_visibly_changes_the_picture(wallet: str, field: str) -> None:
    plain = params_for(wallet, {})
    moved = params_for(wallet, {field: MOVING[field]})
    assert moved != plain
    assert mean_diff(render(plain), render(moved)) > VISIBLE_MEAN_DIFF


@pytest.mark.parametrize("wallet", sorted(WALLETS))
def test_every_class_is_its_own_picture(wallet: str) -> None:
    plain = params_for(wallet, {})
    frames = {value: render(params_for(wallet, {"class": value})) for value in SCHEMA.fields["class"].values}
    reference = render(plain)
    for value, frame in frames.items():
        # A class sets the motif: the one whose motif the wallet already has leaves it as it was.
        if params_for(wallet, {"class": value}).motif == plain.motif:
            assert np.array_equal(frame, reference), value
        else:
            assert mean_diff(frame, reference) > VISIBLE_MEAN_DIFF, value
    values = list(frames)
    for i, a in enumerate(values):
        for b in values[i + 1 :]:
            assert mean_diff(frames[a], frames[b]) > VISIBLE_MEAN_DIFF, (a, b)


@pytest.mark.parametrize("wallet", sorted(WALLETS))
def test_a_guild_stamps_its_seal_in_the_corner_and_nowhere_else(wallet: str) -> None:
    plain = params_for(wallet, {})
    owls, moles = params_for(wallet, {"guild": "owls"}), params_for(wallet, {"guild": "moles"})
    assert (owls.seal, moles.seal) == (seal_of("owls"), seal_of("moles"))
    box = seal_box(SIZE)
    reference, with_owls, with_moles = render(plain), render(owls), render(moles)
    assert mean_diff(reference[box], with_owls[box]) > VISIBLE_MEAN_DIFF
    assert mean_diff(with_owls[box], with_moles[box]) > VISIBLE_MEAN_DIFF  # each guild its own seal
    if plain.mood in ("serene", "playful", "austere"):
        # Without bloom (whose glow spreads light), nothing outside the seal's box moves.
        outside = np.ones((SIZE, SIZE), dtype=bool)
        outside[box] = False
        assert np.array_equal(reference[outside], with_owls[outside])


@pytest.mark.parametrize("bit", [24, 26, 23, 21, 8, 11, 12, 13, 14, 0])
def test_each_part_of_the_seal_changes_the_emblem(bit: int) -> None:
    # Sides (byte 3), turn (byte 2), ground colour / fill / rings / dot (byte 1), star (byte 0).
    base = replace(params_for("newcomer", {}), mood="serene")
    seal = 0x5A5A5A5A
    box = seal_box(256)
    first = render(replace(base, seal=f"{seal:08x}"), 256)[box]
    second = render(replace(base, seal=f"{seal ^ (1 << bit):08x}"), 256)[box]
    assert mean_diff(first, second) > 1.0, f"bit {bit}"


def test_an_empty_context_renders_like_no_context() -> None:
    for wallet in WALLETS:
        plain = render_procedural(params_for(wallet, {}), DNA.palettes["dawn"], 3, 64, 64)
        for empty in ({}, {"achievements": []}, {"guild": ""}):
            same = render_procedural(params_for(wallet, empty), DNA.palettes["dawn"], 3, 64, 64)
            assert same.pixel_sha256 == plain.pixel_sha256


@pytest.mark.parametrize(("width", "height"), [(16, 16), (81, 33), (33, 81), (64, 64)])
def test_a_seal_renders_at_any_size(width: int, height: int) -> None:
    sealed = replace(params_for("gamer", {}), seal=seal_of("owls"))
    frame = synthesize(sealed, DNA.palettes["arcade"], 1, width, height)
    assert frame.shape == (height, width, 3)
    assert frame.dtype == np.uint8


@pytest.mark.parametrize("seal", ["ABCDEF01", "abc", "zzzzzzzz", None, 12345])
def test_a_malformed_seal_is_a_render_error(seal: Any) -> None:
    with pytest.raises(InvalidRenderRequest, match="seal"):
        synthesize(replace(params_for("gamer", {}), seal=seal), DNA.palettes["arcade"], 1, 32, 32)
