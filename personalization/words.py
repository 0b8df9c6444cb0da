"""A token's name and description: the collection's `[style.words]` bounds, the template, and the checks.

Words come from the orchestrator: the LLM writes them, the rule-based orchestrator (and every
fallback) fills the collection's templates from the chosen params. Whatever wrote them, they
pass the same checks before they reach the metadata:

- whitespace collapsed, control characters and markup brackets dropped;
- length: too long → cut at a word boundary within the bound (`clamped`); too short or empty →
  the template (`replaced`);
- the DNA's deny list, a URL, the recipient's address or a recognisable fragment of it (its first
  or last 4+ hex digits, any 0x-hex run, any 6+ hex digits from it), or text outside the
  collection's language → the template (`replaced`).

Each change is a reason (`"<field>:<why>"`) in `TokenWords.reasons`, which goes into provenance.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from personalization.errors import StyleDNAError
from personalization.prompt import denied_word

WordsSource = Literal["template", "model", "clamped", "replaced"]

DEFAULT_NAME_TEMPLATE = "{Medium} {Motif} of the {Palette}"
DEFAULT_DESCRIPTION_TEMPLATE = (
    "{Mood} {medium} {motif} in the {palette} palette, drawn from a {persona} wallet's on-chain life."
)
TEMPLATE_FIELDS = ("palette", "medium", "motif", "mood", "persona")
MIN_NAME_CHARS = 3
MIN_DESCRIPTION_CHARS = 12
# A language's letters must be mostly in its scripts (names may borrow a Latin word or two).
MIN_SCRIPT_SHARE = 0.85
# Descriptions this many words long must contain one of the language's function words.
STOPWORD_CHECK_WORDS = 6

# The scripts each supported language is written in (unicodedata names start with them).
LANGUAGE_SCRIPTS: dict[str, tuple[str, ...]] = {
    "en": ("LATIN",),
    "de": ("LATIN",),
    "fr": ("LATIN",),
    "es": ("LATIN",),
    "it": ("LATIN",),
    "pt": ("LATIN",),
    "ru": ("CYRILLIC",),
    "el": ("GREEK",),
    "ja": ("HIRAGANA", "KATAKANA", "CJK"),
    "zh": ("CJK",),
    "ko": ("HANGUL",),
}
LANGUAGE_NAMES = {
    "en": "English",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "it": "Italian",
    "pt": "Portuguese",
    "ru": "Russian",
    "el": "Greek",
    "ja": "Japanese",
    "zh": "Chinese",
    "ko": "Korean",
}
# Function words: a Latin-script sentence with none of its language's is probably another language.
STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "a",
            "an",
            "the",
            "of",
            "and",
            "in",
            "on",
            "with",
            "for",
            "to",
            "by",
            "from",
            "at",
            "is",
            "its",
            "as",
            "that",
            "this",
            "who",
            "whose",
        ]
    ),
    "de": frozenset(
        [
            "der",
            "die",
            "das",
            "ein",
            "eine",
            "und",
            "in",
            "im",
            "mit",
            "für",
            "von",
            "zu",
            "auf",
            "ist",
            "des",
            "dem",
            "den",
        ]
    ),
    "fr": frozenset(
        ["le", "la", "les", "un", "une", "des", "et", "en", "dans", "avec", "pour", "de", "du", "au", "est", "sur"]
    ),
    "es": frozenset(["el", "la", "los", "las", "un", "una", "y", "en", "con", "para", "de", "del", "al", "es", "por"]),
    "it": frozenset(["il", "lo", "la", "i", "gli", "le", "un", "una", "e", "in", "con", "per", "di", "del", "al", "è"]),
    "pt": frozenset(["o", "a", "os", "as", "um", "uma", "e", "em", "com", "para", "de", "do", "da", "no", "na", "é"]),
}

_MARKUP = str.maketrans("", "", "<>{}[]`\\|*_#")
_URL = re.compile(r"(https?://|www\.|\.com\b|\.io\b|\.xyz\b)", re.IGNORECASE)
_HEX_RUN = re.compile(r"0x[0-9a-f]{2,}", re.IGNORECASE)


WordsWriter = Literal["model", "template"]
WORDS_WRITERS: tuple[WordsWriter, ...] = ("model", "template")


@dataclass(frozen=True)
class WordsConfig:
    """A collection's `[style.words]`: length bounds, language and templates of names and descriptions."""

    name_max: int = 40
    description_max: int = 120
    language: str = "en"
    name_template: str = DEFAULT_NAME_TEMPLATE
    description_template: str = DEFAULT_DESCRIPTION_TEMPLATE
    # Who writes them when an LLM orchestrates: the model (checked, the template standing in for a
    # word it got wrong) or the template alone (the model then only chooses: a shorter answer).
    writer: WordsWriter = "model"

    @property
    def language_name(self) -> str:
        return LANGUAGE_NAMES[self.language]


@dataclass(frozen=True)
class TokenWords:
    """A token's name (without the edition) and description, what wrote them, and every change made."""

    name: str
    description: str
    source: WordsSource = "template"
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "reasons": list(self.reasons),
        }


def parse_words_config(raw: Any, where: str, deny: tuple[str, ...]) -> WordsConfig:
    """`[style.words]` → WordsConfig (absent: the defaults); errors name the file and the key."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise StyleDNAError(f"{where}: style.words must be a table")
    known = {"name_max", "description_max", "language", "name_template", "description_template", "writer"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise StyleDNAError(f"{where}: style.words has unknown keys {unknown}")
    config = WordsConfig(**dict(raw))
    for key, low, high in (("name_max", 8, 120), ("description_max", 40, 1000)):
        value = getattr(config, key)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise StyleDNAError(f"{where}: style.words.{key} must be an integer in [{low}, {high}]")
    if config.writer not in WORDS_WRITERS:
        raise StyleDNAError(f"{where}: style.words.writer must be one of {list(WORDS_WRITERS)}")
    if config.language not in LANGUAGE_SCRIPTS:
        raise StyleDNAError(f"{where}: style.words.language must be one of {sorted(LANGUAGE_SCRIPTS)}")
    for key in ("name_template", "description_template"):
        template = getattr(config, key)
        if not isinstance(template, str) or not template.strip():
            raise StyleDNAError(f"{where}: style.words.{key} must be a non-empty string")
        try:
            template.format(**_fields(dict.fromkeys(TEMPLATE_FIELDS, "x")))
        except (KeyError, IndexError, ValueError) as exc:
            raise StyleDNAError(f"{where}: style.words.{key} names an unknown field ({exc})") from exc
        hit = denied_word(template, deny)
        if hit is not None:
            raise StyleDNAError(f"{where}: style.words.{key} contains the denied word {hit!r}")
    return config


def _fields(values: Mapping[str, str]) -> dict[str, str]:
    """Template fields: each value as written, and Capitalised (`{Motif}`)."""
    out: dict[str, str] = {}
    for key, value in values.items():
        out[key] = value
        out[key.capitalize()] = value[:1].upper() + value[1:]
    return out


def template_words(choices: Mapping[str, str], persona: str, config: WordsConfig) -> TokenWords:
    """The deterministic words from the chosen palette/medium/motif/mood and the persona, cut to the bounds."""
    values = _fields(
        {**{name: str(choices[name]) for name in TEMPLATE_FIELDS if name != "persona"}, "persona": persona}
    )
    name = cut(normalize(config.name_template.format(**values)), config.name_max)
    description = cut(normalize(config.description_template.format(**values)), config.description_max)
    return TokenWords(name=name, description=description, source="template")


def normalize(text: str) -> str:
    """NFC, no control characters or markup brackets, whitespace collapsed, no wrapping quotes."""
    text = unicodedata.normalize("NFC", text)
    text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    text = " ".join(text.translate(_MARKUP).split())
    return text.strip(" \"'“”‘’")


def cut(text: str, limit: int) -> str:
    """At most `limit` characters, ending at a word boundary where there is one."""
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    space = head.rfind(" ")
    kept = head[:space] if space > 0 else text[:limit]
    return kept.rstrip(" ,;:-–—")


def address_fragment(text: str, address: str | None) -> bool:
    """Whether text shows an address: any 0x-hex run, or the recipient's first/last 4+ or any 6 hex digits."""
    if _HEX_RUN.search(text):
        return True
    if not address:
        return False
    digits = address.lower().removeprefix("0x")
    flat = text.lower()
    if len(digits) >= 4 and (digits[:4] in flat or digits[-4:] in flat):
        return True
    return any(digits[i : i + 6] in flat for i in range(len(digits) - 5))


def in_language(text: str, language: str) -> bool:
    """Mostly letters of the language's scripts; a longer Latin-script text holds one of its function words."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return False
    scripts = LANGUAGE_SCRIPTS[language]
    inside = sum(1 for ch in letters if unicodedata.name(ch, "").startswith(scripts))
    if inside / len(letters) < MIN_SCRIPT_SHARE:
        return False
    words = re.findall(r"[^\W\d_]+", text.lower())
    stopwords = STOPWORDS.get(language)
    return not (stopwords and len(words) >= STOPWORD_CHECK_WORDS and not stopwords.intersection(words))


def _problem(
    text: str, field: str, *, minimum: int, deny: tuple[str, ...], language: str, address: str | None
) -> str | None:
    """Why text cannot be used at all (before length clamping), or None."""
    if len(text) < minimum:
        return f"{field}:missing" if not text else f"{field}:too_short"
    if denied_word(text, deny) is not None:
        return f"{field}:denied"
    if _URL.search(text):
        return f"{field}:url"
    if address_fragment(text, address):
        return f"{field}:address"
    if not in_language(text, language):
        return f"{field}:language"
    return None


def check_words(
    name: Any,
    description: Any,
    *,
    fallback: TokenWords,
    config: WordsConfig,
    deny: tuple[str, ...],
    address: str | None,
    generic: tuple[str, ...] = (),
) -> TokenWords:
    """A model's name and description inside the bounds: kept, clamped, or each replaced by the fallback's.

    `generic` names no token may take as its own (the collection's name and id): a small model
    often just repeats the collection, and every token would be called the same."""
    reasons: list[str] = []
    kept: dict[str, str] = {}
    replaced = clamped = False
    for field, raw, minimum, limit in (
        ("name", name, MIN_NAME_CHARS, config.name_max),
        ("description", description, MIN_DESCRIPTION_CHARS, config.description_max),
    ):
        text = normalize(raw) if isinstance(raw, str) else ""
        problem = _problem(text, field, minimum=minimum, deny=deny, language=config.language, address=address)
        if raw is not None and not isinstance(raw, str):
            problem = f"{field}:not_text"
        elif problem is None and field == "name" and text.casefold() in {g.casefold() for g in generic}:
            problem = "name:generic"
        short = cut(text, limit)
        if problem is None and short != text:
            # What is kept must pass on its own (a cut can leave too little, or only digits).
            after_cut = _problem(short, field, minimum=minimum, deny=deny, language=config.language, address=address)
            problem = None if after_cut is None else f"{field}:too_long"
        if problem is not None:
            reasons.append(problem)
            kept[field] = getattr(fallback, field)
            replaced = True
            continue
        if text != raw:
            reasons.append(f"{field}:normalized")
        if short != text:
            reasons.append(f"{field}:too_long")
        clamped = clamped or short != raw
        kept[field] = short
    source: WordsSource = "replaced" if replaced else "clamped" if clamped else "model"
    return TokenWords(name=kept["name"], description=kept["description"], source=source, reasons=tuple(reasons))
