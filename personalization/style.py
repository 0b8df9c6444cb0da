"""The collection's style DNA (the bounds) and StyleParams (one choice inside them)."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from msgspec import UNSET, UnsetType

from personalization.caps import StyleCaps, parse_style_caps
from personalization.context import ContextSchema, parse_context_schema
from personalization.context_style import SEAL_FIELD, ContextStyle, is_seal, parse_context_style
from personalization.errors import StyleDNAError
from personalization.prompt import MAX_NEGATIVE_CHARS, cap_parts, compose_prompt
from personalization.words import WordsConfig, parse_words_config

# The choice fields every style DNA must bound, and the numeric ones.
CHOICE_FIELDS = ("palette", "medium", "motif", "mood")
NUMERIC_FIELDS = ("complexity", "energy", "symmetry", "grain", "hue_shift")


@dataclass(frozen=True)
class StyleParams:
    """One point inside a collection's style DNA; canonical JSON is its identity."""

    palette: str
    medium: str
    motif: str
    mood: str
    complexity: int
    energy: int
    symmetry: int
    grain: int
    hue_shift: int
    # Set only by app context (a `seal = true` rule, see context_style.py): 8 hex digits drawn as
    # a seal in a corner. UNSET, the default, draws nothing and is absent (not null) from every
    # encoding, the canonical JSON and the job record's (msgspec omits UNSET) alike, so params
    # without a seal keep the identity and the pixels they had before seals existed.
    seal: str | UnsetType = UNSET

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if data[SEAL_FIELD] is UNSET:
            del data[SEAL_FIELD]
        return data

    def canonical_json(self) -> bytes:
        return canonical_json(self.to_dict())

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json()).hexdigest()

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StyleParams:
        names = {f.name for f in fields(cls)}
        missing = names - raw.keys() - {SEAL_FIELD}
        if missing:
            raise StyleDNAError(f"style params missing fields: {sorted(missing)}")
        return cls(**{name: raw[name] for name in names if name in raw})


@dataclass(frozen=True)
class NumericRange:
    low: int
    high: int

    def clamp(self, value: int) -> int:
        return max(self.low, min(self.high, value))


@dataclass(frozen=True)
class StyleDNA:
    """What a collection allows: the schema the orchestrator chooses inside."""

    collection_id: str
    name: str
    symbol: str
    description: str
    palettes: dict[str, tuple[str, ...]]
    media: tuple[str, ...]
    motifs: tuple[str, ...]
    moods: tuple[str, ...]
    ranges: dict[str, NumericRange]
    negative_prompts: tuple[str, ...]
    prompt_template: str
    width: int
    height: int
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)
    # Words no composed prompt may contain (style.deny); also appended to the negative prompt.
    deny: tuple[str, ...] = ()
    # The app context this collection accepts (the file's [context] table).
    context_schema: ContextSchema = field(default_factory=ContextSchema, compare=False)
    # How that context moves the style (the file's [style.context] tables).
    context_style: ContextStyle = field(default_factory=ContextStyle, compare=False)
    # Bounds, language and templates of token names and descriptions (the file's [style.words], words.py).
    words: WordsConfig = field(default_factory=WordsConfig, compare=False)
    # How rare a choice must stay across the collection's tokens (the file's [style.caps], caps.py).
    caps: StyleCaps = field(default_factory=StyleCaps, compare=False)

    def choices(self, name: str) -> tuple[str, ...]:
        if name == "palette":
            return tuple(self.palettes)
        return {"medium": self.media, "motif": self.motifs, "mood": self.moods}[name]

    def sha256(self) -> str:
        return hashlib.sha256(canonical_json(self.raw)).hexdigest()

    def validate(self, params: StyleParams) -> None:
        """Raise StyleDNAError unless params lie inside these bounds exactly."""
        for name in CHOICE_FIELDS:
            value = getattr(params, name)
            if value not in self.choices(name):
                raise StyleDNAError(f"{name}={value!r} is not allowed by {self.collection_id}")
        for name in NUMERIC_FIELDS:
            value = getattr(params, name)
            bounds = self.ranges[name]
            if not isinstance(value, int) or isinstance(value, bool):
                raise StyleDNAError(f"{name} must be an integer")
            if not bounds.low <= value <= bounds.high:
                raise StyleDNAError(f"{name}={value} outside [{bounds.low}, {bounds.high}]")
        if params.seal is not UNSET:
            if not self.context_style.draws_seal:
                raise StyleDNAError(f"{self.collection_id} maps no context field to a seal, but seal is set")
            if not is_seal(params.seal):
                raise StyleDNAError(f"seal={params.seal!r} is not 8 lowercase hex digits")

    def prompt(self, params: StyleParams) -> str:
        """Diffusion prompt composed from bounded params and the DNA template only (capped, deny-checked)."""
        return compose_prompt(params, self).positive

    def negative_prompt(self) -> str:
        """The DNA's negative prompts plus its deny list, capped."""
        words: list[str] = []
        for word in (*self.negative_prompts, *self.deny):
            if word not in words:
                words.append(word)
        return cap_parts(words, MAX_NEGATIVE_CHARS)


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the bytes that get hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _hex_color(value: Any, where: str) -> str:
    if not (isinstance(value, str) and len(value) == 7 and value[0] == "#"):
        raise StyleDNAError(f"{where}: colour {value!r} is not #rrggbb")
    try:
        int(value[1:], 16)
    except ValueError as exc:
        raise StyleDNAError(f"{where}: colour {value!r} is not #rrggbb") from exc
    return value.lower()


def _str_list(raw: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise StyleDNAError(f"{where}: '{key}' must be a non-empty list of strings")
    if len(set(value)) != len(value):
        raise StyleDNAError(f"{where}: '{key}' has duplicates")
    return tuple(value)


def parse_style_dna(raw: dict[str, Any], where: str) -> StyleDNA:
    """Validate a collection document's style section; errors name the file and field."""
    try:
        collection_id = raw["id"]
        style = raw["style"]
    except KeyError as exc:
        raise StyleDNAError(f"{where}: missing '{exc.args[0]}'") from exc
    if not isinstance(collection_id, str) or not collection_id.isidentifier():
        raise StyleDNAError(f"{where}: 'id' must be an identifier")
    palettes_raw = style.get("palettes")
    if not isinstance(palettes_raw, dict) or not palettes_raw:
        raise StyleDNAError(f"{where}: 'style.palettes' must be a non-empty table")
    palettes = {
        name: tuple(_hex_color(c, f"{where}: style.palettes.{name}") for c in colours)
        for name, colours in palettes_raw.items()
    }
    for name, colours in palettes.items():
        if len(colours) < 3:
            raise StyleDNAError(f"{where}: style.palettes.{name} needs at least 3 colours")
    ranges_raw = style.get("ranges", {})
    ranges: dict[str, NumericRange] = {}
    for name in NUMERIC_FIELDS:
        pair = ranges_raw.get(name)
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in pair)
            and pair[0] <= pair[1]
        ):
            raise StyleDNAError(f"{where}: style.ranges.{name} must be [low, high] integers")
        ranges[name] = NumericRange(pair[0], pair[1])
    render = raw.get("render", {})
    width, height = render.get("width", 1024), render.get("height", 1024)
    for key, value in (("width", width), ("height", height)):
        if not isinstance(value, int) or not 64 <= value <= 4096 or value % 8:
            raise StyleDNAError(f"{where}: render.{key} must be a multiple of 8 in [64, 4096]")
    template = style.get("prompt_template", "{mood} {motif}, {medium}, {palette} palette")
    try:
        template.format(**dict.fromkeys(CHOICE_FIELDS + NUMERIC_FIELDS, "x"))
    except (KeyError, IndexError) as exc:
        raise StyleDNAError(f"{where}: style.prompt_template names an unknown field") from exc
    deny_raw = style.get("deny", [])
    if not isinstance(deny_raw, list) or not all(isinstance(w, str) and w.strip() for w in deny_raw):
        raise StyleDNAError(f"{where}: style.deny must be a list of words")
    deny = tuple(w.strip().lower() for w in deny_raw)
    media, motifs, moods = (
        _str_list(style, "media", where + ": style"),
        _str_list(style, "motifs", where + ": style"),
        _str_list(style, "moods", where + ": style"),
    )
    from personalization.prompt import denied_word

    context_schema = parse_context_schema(raw.get("context"), where)
    context_style = parse_context_style(
        style.get("context"),
        context_schema,
        {"palette": tuple(palettes), "medium": media, "motif": motifs, "mood": moods},
        NUMERIC_FIELDS,
        where,
    )
    caps = parse_style_caps(
        style.get("caps"), {"palette": tuple(palettes), "medium": media, "motif": motifs, "mood": moods}, where
    )

    for text in (template, *palettes, *media, *motifs, *moods):
        hit = denied_word(text, deny)
        if hit is not None:
            raise StyleDNAError(f"{where}: {text!r} contains the denied word {hit!r}")
    return StyleDNA(
        collection_id=collection_id,
        name=str(raw.get("name", collection_id)),
        symbol=str(raw.get("symbol", collection_id.upper()[:8])),
        description=str(raw.get("description", "")),
        palettes=palettes,
        media=media,
        motifs=motifs,
        moods=moods,
        ranges=ranges,
        negative_prompts=tuple(style.get("negative_prompts", ())),
        prompt_template=template,
        width=width,
        height=height,
        raw=raw,
        deny=deny,
        context_schema=context_schema,
        context_style=context_style,
        words=parse_words_config(style.get("words"), where, deny),
        caps=caps,
    )


def load_style_dna(path: Path) -> StyleDNA:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise StyleDNAError(f"{path}: {exc}") from exc
    return parse_style_dna(raw, str(path))
