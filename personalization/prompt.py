"""Diffusion prompts (positive + negative) composed only from bounded params and the DNA's templates.

No free text reaches a prompt unchecked: the template is the collection's, every
value filled into it is one the DNA allows, optional extra terms (e.g. an app
context's enum value) must be short plain words, and nothing on the DNA's deny list
survives. Both prompts are capped in length (CLIP reads ~77 tokens anyway).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from personalization.errors import StyleDNAError

MAX_POSITIVE_CHARS = 400
MAX_NEGATIVE_CHARS = 300
MAX_EXTRA_TERMS = 4
_TERM = re.compile(r"[a-z][a-z0-9 \-]{0,31}")


class PromptParams(Protocol):
    """What a prompt needs of StyleParams: its fields by name."""

    def to_dict(self) -> dict[str, Any]: ...


class PromptStyle(Protocol):
    """What a prompt needs of a StyleDNA (personalization.style depends on this module, not back)."""

    @property
    def collection_id(self) -> str: ...
    @property
    def prompt_template(self) -> str: ...
    @property
    def negative_prompts(self) -> tuple[str, ...]: ...
    @property
    def deny(self) -> tuple[str, ...]: ...

    def validate(self, params: Any) -> None: ...


@dataclass(frozen=True)
class ComposedPrompt:
    positive: str
    negative: str
    dropped_terms: tuple[str, ...] = ()  # extra terms refused (not plain, denied, or over the count)


def denied_word(text: str, deny: Iterable[str]) -> str | None:
    """The first deny-listed word that starts a word in text (so 'nudes' hits 'nude'), if any."""
    for word in deny:
        if word and re.search(rf"(?<![a-z0-9]){re.escape(word.lower())}", text.lower()):
            return word
    return None


def cap_parts(parts: list[str], limit: int) -> str:
    """Join comma-separated parts, dropping whole trailing parts past the limit."""
    kept: list[str] = []
    length = 0
    for part in parts:
        extra = len(part) + (2 if kept else 0)
        if length + extra > limit:
            break
        kept.append(part)
        length += extra
    if not kept and parts:
        return parts[0][:limit]
    return ", ".join(kept)


def compose_prompt(params: PromptParams, dna: PromptStyle, *, extra_terms: Iterable[str] = ()) -> ComposedPrompt:
    """Template + params (checked against the DNA) + vetted extra terms; negative from the DNA."""
    dna.validate(params)
    base = dna.prompt_template.format(**params.to_dict())
    hit = denied_word(base, dna.deny)
    if hit is not None:
        # Only the collection file can put words here; refuse rather than render around it.
        raise StyleDNAError(f"{dna.collection_id}: prompt template or choices contain denied word {hit!r}")
    accepted: list[str] = []
    dropped: list[str] = []
    for raw in extra_terms:
        term = " ".join(str(raw).lower().split())
        if (
            not _TERM.fullmatch(term)
            or denied_word(term, dna.deny) is not None
            or term in accepted
            or len(accepted) >= MAX_EXTRA_TERMS
        ):
            dropped.append(str(raw)[:40])
            continue
        accepted.append(term)
    positive = cap_parts([part.strip() for part in base.split(",")] + accepted, MAX_POSITIVE_CHARS)
    negatives: list[str] = []
    for word in (*dna.negative_prompts, *dna.deny):
        cleaned = " ".join(word.split())
        if cleaned and cleaned not in negatives:
            negatives.append(cleaned)
    return ComposedPrompt(
        positive=positive, negative=cap_parts(negatives, MAX_NEGATIVE_CHARS), dropped_terms=tuple(dropped)
    )
