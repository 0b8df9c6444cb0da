"""Token names and descriptions: `[style.words]` parsing, the template, and every check a model's words pass."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personalization.errors import StyleDNAError
from personalization.orchestrator.rule_based import RuleBasedOrchestrator
from personalization.prompt import denied_word
from personalization.style import load_style_dna
from personalization.words import (
    TokenWords,
    WordsConfig,
    address_fragment,
    check_words,
    in_language,
    parse_words_config,
    template_words,
)
from tests.support.archetypes import ARCHETYPES

DNA = load_style_dna(Path(__file__).resolve().parents[3] / "collections" / "default.toml")
CONFIG = DNA.words
ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
FALLBACK = TokenWords(name="Neon Shards of the Arcade", description="Playful neon shards in the arcade palette.")
GOOD_NAME = "Midnight Pixel Storm"
GOOD_DESCRIPTION = "A storm of bright shards for a wallet that lives in its games."


def _check(name: object, description: object, *, config: WordsConfig = CONFIG) -> TokenWords:
    return check_words(name, description, fallback=FALLBACK, config=config, deny=DNA.deny, address=ADDRESS)


def test_the_default_collection_declares_its_words() -> None:
    assert (CONFIG.name_max, CONFIG.description_max, CONFIG.language) == (40, 120, "en")


def test_words_inside_every_bound_are_used_as_given() -> None:
    words = _check(GOOD_NAME, GOOD_DESCRIPTION)
    assert (words.name, words.description, words.source, words.reasons) == (GOOD_NAME, GOOD_DESCRIPTION, "model", ())


def test_too_long_words_are_cut_at_a_word_and_the_reason_recorded() -> None:
    name = "The Extraordinarily Long Midnight Pixel Storm Over Everything"
    description = "A storm of bright shards " * 10
    words = _check(name, description)
    assert words.source == "clamped"
    assert len(words.name) <= CONFIG.name_max
    assert name.startswith(words.name)
    assert not words.name.endswith(" ")
    assert name[len(words.name)] == " "  # cut at a word boundary
    assert len(words.description) <= CONFIG.description_max
    assert {"name:too_long", "description:too_long"} <= set(words.reasons)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "name:missing"),
        (None, "name:missing"),
        ("ab", "name:too_short"),
        (42, "name:not_text"),
        ("Nude Pixel Storm", "name:denied"),
        ("Storm at https://evil.example", "name:url"),
        ("Storm of 0x7099", "name:address"),
        ("Storm 70997970", "name:address"),
        ("Storm dc79c8", "name:address"),
        ("Storm C51812dc3A", "name:address"),
        ("Буря пикселей", "name:language"),
        ("像素风暴之夜", "name:language"),
    ],
)
def test_a_name_that_breaks_a_bound_is_replaced_by_the_template_with_the_reason(name: object, reason: str) -> None:
    words = _check(name, GOOD_DESCRIPTION)
    assert words.name == FALLBACK.name
    assert words.description == GOOD_DESCRIPTION  # only the broken word is replaced
    assert words.source == "replaced"
    assert reason in words.reasons


def test_a_name_that_only_repeats_the_collection_is_replaced() -> None:
    for generic in (DNA.name, DNA.name.upper(), f"  {DNA.collection_id} "):
        words = check_words(
            generic,
            GOOD_DESCRIPTION,
            fallback=FALLBACK,
            config=CONFIG,
            deny=DNA.deny,
            address=ADDRESS,
            generic=(DNA.name, DNA.collection_id),
        )
        assert (words.name, words.source, words.reasons) == (FALLBACK.name, "replaced", ("name:generic",))
    assert _check(DNA.name, GOOD_DESCRIPTION).name == DNA.name  # only where the caller names it generic


def test_a_description_in_another_language_is_replaced() -> None:
    words = _check(GOOD_NAME, "Una tormenta de fragmentos brillantes para una cartera que vive en sus juegos.")
    assert words.description == FALLBACK.description
    assert "description:language" in words.reasons


def test_a_collection_in_another_language_accepts_that_language_only() -> None:
    german = replace(CONFIG, language="de")
    kept = _check(
        "Pixelsturm", "Ein Sturm aus hellen Splittern für eine Wallet, die in ihren Spielen lebt.", config=german
    )
    assert kept.source == "model"
    refused = _check("Pixelsturm", "A storm of bright shards for a wallet that lives for its games.", config=german)
    assert "description:language" in refused.reasons


def test_whitespace_and_markup_are_normalized_and_recorded() -> None:
    words = _check('  "Midnight   <b>Pixel</b> Storm"\n', GOOD_DESCRIPTION)
    assert words.name == "Midnight bPixel/b Storm"
    assert words.source == "clamped"
    assert "name:normalized" in words.reasons


def test_address_fragments_are_recognised_and_plain_words_are_not() -> None:
    assert address_fragment("token of 0xabc123", None)
    assert address_fragment("the 7099 storm", ADDRESS)  # first four hex digits
    assert address_fragment("the 79C8 storm", ADDRESS)  # last four
    assert not address_fragment("a storm of 1999 shards", ADDRESS)
    assert not address_fragment(GOOD_DESCRIPTION, ADDRESS)


def test_language_checks_script_and_function_words() -> None:
    assert in_language(GOOD_DESCRIPTION, "en")
    assert not in_language("Una tormenta de fragmentos brillantes para una cartera digital", "en")
    assert in_language("Пиксельная буря", "ru")
    assert not in_language("12345", "en")


@settings(max_examples=300, deadline=None)
@given(name=st.one_of(st.none(), st.integers(), st.text(max_size=200)), description=st.text(max_size=400))
def test_any_words_end_inside_every_bound(name: object, description: str) -> None:
    words = _check(name, description)
    for text, limit in ((words.name, CONFIG.name_max), (words.description, CONFIG.description_max)):
        assert 0 < len(text) <= limit
        assert denied_word(text, DNA.deny) is None
        assert not address_fragment(text, ADDRESS)
        assert in_language(text, "en")
    assert words.source in ("model", "clamped", "replaced")
    assert (words.source == "model") == (words.reasons == ())


def test_template_words_are_deterministic_bounded_and_address_free() -> None:
    for name, profile in ARCHETYPES.items():
        first = asyncio.run(RuleBasedOrchestrator().choose(profile, DNA))
        again = asyncio.run(RuleBasedOrchestrator().choose(profile, DNA))
        assert first.words is not None
        assert first.words == again.words
        assert first.words.source == "template"
        assert len(first.words.name) <= CONFIG.name_max
        assert len(first.words.description) <= CONFIG.description_max
        assert name in first.words.description
        assert not address_fragment(first.words.name + first.words.description, profile.address)
    gamer = asyncio.run(RuleBasedOrchestrator().choose(ARCHETYPES["gamer"], DNA))
    assert gamer.words is not None
    assert gamer.words.name == "Neon Shards of the Arcade"


def test_template_words_follow_the_context_moved_choice() -> None:
    mage_as_warrior = replace(ARCHETYPES["gamer"], context={"class": "warrior"})
    chosen = asyncio.run(RuleBasedOrchestrator().choose(mage_as_warrior, DNA))
    assert chosen.params.motif == "grid"
    assert chosen.words is not None
    assert chosen.words.name == "Neon Grid of the Arcade"


def test_template_is_cut_to_the_bound() -> None:
    tight = replace(CONFIG, name_max=10)
    words = template_words(
        {"palette": "arcade", "medium": "neon", "motif": "shards", "mood": "playful"}, "gamer", tight
    )
    assert words.name == "Neon"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"name_max": 2}, "name_max"),
        ({"description_max": 10_000}, "description_max"),
        ({"language": "xx"}, "language"),
        ({"name_template": "{Nope} of it"}, "unknown field"),
        ({"description_template": "a nude {motif}"}, "denied"),
        ({"colour": 1}, "unknown keys"),
        ("words", "table"),
    ],
)
def test_bad_words_tables_are_refused_with_the_key(raw: object, message: str) -> None:
    with pytest.raises(StyleDNAError, match=message):
        parse_words_config(raw, "c.toml", ("nude",))


def test_absent_words_table_gives_the_defaults() -> None:
    assert parse_words_config(None, "c.toml", ()) == WordsConfig()


def test_a_template_writer_keeps_the_words_out_of_the_model_s_answer() -> None:
    from personalization.orchestrator.llm import compact_schema, static_prefix

    template = replace(DNA, words=replace(CONFIG, writer="template"))
    assert set(compact_schema(template)["properties"]) == {"palette", "medium", "motif", "mood"}
    assert set(compact_schema(DNA)["properties"]) >= {"name", "description"}
    assert "title" not in static_prefix(template)
    assert "title" in static_prefix(DNA)
    assert parse_words_config({"writer": "template"}, "x.toml", ()).writer == "template"
    with pytest.raises(StyleDNAError, match="writer"):
        parse_words_config({"writer": "poet"}, "x.toml", ())
