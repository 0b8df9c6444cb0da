"""The LLM orchestrator: an OpenAI-compatible chat model picks StyleParams, always inside the DNA.

One LangChain chain: prompt → `ChatOpenAI.with_structured_output(schema, method="function_calling")`
→ validate and clamp (personalization/bounds.py), `.with_fallbacks` to the rule-based
orchestrator. It never raises: a timeout, a 429 after retries, malformed JSON, a refusal
or a wrong-shaped answer all end in the rule-based params, with the reason recorded.

Choices made for the servers this must run against:
- Only function calling with a named `tool_choice`: llama.cpp's server (llama-cpp-python)
  rejects `response_format.type=json_schema`, but turns a forced tool's JSON schema into a
  grammar, so its answer is at least well-formed and its enums are honoured. That grammar
  ignores integer `minimum`/`maximum`, hence clamping rather than trusting.
- `max_tokens` goes in `extra_body`: langchain-openai sends `max_completion_tokens`, which
  llama.cpp ignores (an unbounded answer would run to the context size).
- No system message: Gemma's chat format drops it, so the instructions open the user message.
- temperature 0 and a fixed seed; an optional answer store (Redis) makes the same inputs
  give the same answer even where the provider is not deterministic.
- Two prompt shapes. `compact` (the default): the model picks the four choices and writes the
  token's name and description (personalization/words.py checks them); the numbers are the
  rubric's, read from activity. The static part (instructions, the DNA's choices, the persona
  styles, the word bounds) is a fixed prefix, byte for byte the same for every wallet of a
  collection, so llama.cpp evaluates it once and reuses its KV cache; only the one-line wallet
  part and the short answer cost time. `full` is the shape before words (the model also picks
  the numbers, a JSON dump of the features and a baseline after them), kept for comparison.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import msgspec

from personalization.bounds import clamp_params
from personalization.orchestrator.base import Orchestration, with_app_context
from personalization.orchestrator.rule_based import PERSONAS, RuleBasedOrchestrator, rule_based_params
from personalization.profile import WalletProfile
from personalization.style import CHOICE_FIELDS, NUMERIC_FIELDS, StyleDNA, StyleParams, canonical_json
from personalization.words import TokenWords, check_words, template_words

log = logging.getLogger("personalization.orchestrator.llm")

TOOL_NAME = "choose_style"
PROMPT_VERSION = "2"  # the full shape's
COMPACT_PROMPT_VERSION = "3"
PROMPT_SHAPES = ("compact", "full")
MAX_CONTEXT_CHARS = 1500  # app context shown to the model; the rest is left out, not cut mid-value
MAX_HASHED_RESPONSE = 65_536

# What each field means, for the model; the DNA may not describe its own fields.
FIELD_HINTS = {
    "palette": "colour palette",
    "medium": "artistic medium",
    "motif": "main visual motif",
    "mood": "overall mood",
    "complexity": "more activity, higher",
    "energy": "more transactions, higher",
    "symmetry": "activity on one contract, higher",
    "grain": "older wallet, higher",
    "hue_shift": "mostly receiving +, mostly sending -",
}


class LLMAnswerError(Exception):
    """The model answered, but not with something usable; `reason` goes into provenance."""

    reason = "unusable"

    def __init__(self, detail: str, response_sha256: str | None = None) -> None:
        super().__init__(detail)
        self.response_sha256 = response_sha256


class LLMRefusal(LLMAnswerError):
    reason = "refusal"


class LLMMalformed(LLMAnswerError):
    reason = "malformed"


def style_schema(dna: StyleDNA) -> dict[str, Any]:
    """The tool's JSON schema, generated from the DNA: enums for choices, bounded integers."""
    properties: dict[str, Any] = {}
    for name in CHOICE_FIELDS:
        properties[name] = {"type": "string", "enum": list(dna.choices(name)), "description": FIELD_HINTS[name]}
    for name in NUMERIC_FIELDS:
        bounds = dna.ranges[name]
        properties[name] = {
            "type": "integer",
            "minimum": bounds.low,
            "maximum": bounds.high,
            "description": f"integer {bounds.low}..{bounds.high}: {FIELD_HINTS[name]}",
        }
    return {
        "title": TOOL_NAME,
        "description": f"Choose the style of one token of the collection '{dna.name}' within its bounds.",
        "type": "object",
        "properties": properties,
        "required": [*CHOICE_FIELDS, *NUMERIC_FIELDS],
        "additionalProperties": False,
    }


def compact_schema(dna: StyleDNA) -> dict[str, Any]:
    """The compact tool: the four choices (enums) and the words, in the order the model writes them.

    No `maxLength`: llama.cpp turns it into a grammar that forces the closing quote at the bound
    (a cut mid-word); the words are cut at a word boundary afterwards, `max_tokens` bounds the answer.
    """
    properties: dict[str, Any] = {name: {"type": "string", "enum": list(dna.choices(name))} for name in CHOICE_FIELDS}
    if dna.words.writer == "model":
        properties["name"] = {"type": "string", "description": "the artwork's title"}
        properties["description"] = {"type": "string", "description": "one sentence about the artwork"}
    return {
        "title": TOOL_NAME,
        "description": f"Style and name one token of '{dna.name}'."
        if dna.words.writer == "model"
        else f"Style one token of '{dna.name}'.",
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def static_prefix(dna: StyleDNA) -> str:
    """The compact prompt's first part: the same bytes for every wallet of a collection (cached by the server)."""
    words = dna.words
    language = words.language_name
    styles = [
        f"{persona}: {', '.join(choices[name] for name in CHOICE_FIELDS)}"
        for persona, choices in PERSONAS.items()
        if all(choices[name] in dna.choices(name) for name in CHOICE_FIELDS)
    ]
    by_model = words.writer == "model"
    lines = [
        f"Style {'and name ' if by_model else ''}one artwork of the NFT collection '{dna.name}' for a crypto wallet.",
        f"Call {TOOL_NAME} once with:",
        *(f"{name}: {'|'.join(dna.choices(name))}" for name in CHOICE_FIELDS),
        *(
            [
                f"Then invent a short {language} title for the artwork as name, and write one {language} sentence"
                " describing the artwork as description.",
                "No addresses, numbers or links in them.",
            ]
            if by_model
            else []
        ),
        *(["Each persona's usual style (palette, medium, motif, mood):", *styles] if styles else []),
    ]
    return "\n".join(lines) + "\n"


_WALLET_FEATURES = (
    ("tx_count", "transactions"),
    ("interactions", "contract calls"),
    ("erc20_transfers", "token transfers"),
    ("erc721_transfers", "NFT transfers"),
    ("erc1155_transfers", "game item transfers"),
    ("nfts_held", "NFTs held"),
    ("contracts_deployed", "contracts deployed"),
)


def wallet_line(profile: WalletProfile, persona: str) -> str:
    """The compact prompt's last part: the rubric's persona and a few counts, one short line (~30 tokens)."""
    parts = [f"persona {persona}"]
    labels = sorted(profile.labels.items(), key=lambda item: (-item[1], item[0]))[:3]
    if labels:
        parts.append("activity " + ", ".join(f"{label} {count}" for label, count in labels))
    parts += [f"{count} {label}" for name, label in _WALLET_FEATURES if (count := getattr(profile, name))]
    if profile.balance_eth >= 1:
        parts.append(f"{profile.balance_eth:.0f} ETH")
    return "Wallet: " + "; ".join(parts)


def build_compact_prompt(profile: WalletProfile, dna: StyleDNA, persona: str) -> str:
    """Static prefix + wallet line (app context moves the style afterwards, by the collection's rules)."""
    return static_prefix(dna) + wallet_line(profile, persona)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _context_for_prompt(context: dict[str, Any]) -> dict[str, Any]:
    """App context, whole keys only, up to MAX_CONTEXT_CHARS of JSON (it was validated upstream)."""
    shown: dict[str, Any] = {}
    for key in sorted(context):
        trial = {**shown, key: context[key]}
        if len(canonical_json(trial)) > MAX_CONTEXT_CHARS:
            continue
        shown = trial
    return shown


def build_prompt(profile: WalletProfile, dna: StyleDNA, baseline: StyleParams, persona: str) -> str:
    """The one user message: instructions, allowed values, the wallet's features, a baseline.

    Kept short (~300 tokens): small local models read it on a CPU. Zero and empty features
    are left out; Gemma's chat format shows no tool schema, so the bounds are spelled out.
    """
    features = {k: v for k, v in profile.features().items() if v not in (0, 0.0, False, None, {}, [], "")}
    context = features.pop("context", {}) or {}
    allowed = [f"{name}: {'|'.join(dna.choices(name))}" for name in CHOICE_FIELDS]
    allowed += [
        f"{name}: {dna.ranges[name].low}..{dna.ranges[name].high} ({FIELD_HINTS[name]})" for name in NUMERIC_FIELDS
    ]
    lines = [
        f"Choose the art style of an NFT from '{dna.name}' for one crypto wallet.",
        f"Call {TOOL_NAME} once. Allowed values:",
        *allowed,
        "Wallet: " + canonical_json(features).decode(),
    ]
    if context:
        lines.append("App context: " + canonical_json(_context_for_prompt(context)).decode())
    lines.append(f"Baseline for persona '{persona}' (adjust to fit): " + canonical_json(baseline.to_dict()).decode())
    return "\n".join(lines)


def interpret_answer(
    parsed: Any, dna: StyleDNA, baseline: StyleParams, *, numbers_from_baseline: bool = False
) -> tuple[StyleParams, list[dict[str, Any]]]:
    """Whatever JSON the model produced → params inside the DNA, or LLMMalformed.

    Usable means a JSON object naming at least one style field; every field then goes
    through clamp_params (in-bounds values kept verbatim, numbers clamped, unknown choices
    and missing fields taken from the baseline) and each change is returned for provenance.
    """
    if not isinstance(parsed, dict):
        raise LLMMalformed(f"answer is a {type(parsed).__name__}, not an object")
    known = [name for name in (*CHOICE_FIELDS, *NUMERIC_FIELDS) if name in parsed]
    if not known:
        raise LLMMalformed("answer names no style field")
    if numbers_from_baseline:  # the compact shape does not ask for them: the rubric's, unclamped
        parsed = {**parsed, **{name: getattr(baseline, name) for name in NUMERIC_FIELDS}}
    params, clamps = clamp_params(parsed, dna, baseline)
    return params, [clamp.to_dict() for clamp in clamps]


def _answer_text(message: Any) -> str:
    """The model's answer: its tool call's arguments as canonical JSON, else the raw text.

    Canonical JSON rather than the HTTP body: the body carries ids and timestamps that change
    on every call, and the client keeps only the parsed arguments of a well-formed call.
    """
    for call in getattr(message, "tool_calls", None) or []:
        return canonical_json(call.get("args")).decode()
    for call in getattr(message, "invalid_tool_calls", None) or []:
        if isinstance(call.get("args"), str):
            return str(call["args"])
    content = getattr(message, "content", "")
    return content if isinstance(content, str) else json.dumps(content, default=str)


def _failure_reason(error: BaseException) -> str:
    if isinstance(error, LLMAnswerError):
        return error.reason
    if isinstance(error, TimeoutError):
        return "timeout"
    try:
        import openai
    except ImportError:  # pragma: no cover - openai is a dependency of langchain-openai
        return f"error:{type(error).__name__}"
    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.RateLimitError):
        return "rate_limited"
    if isinstance(error, openai.APIStatusError):
        return f"http_{error.status_code}"
    if isinstance(error, openai.APIConnectionError):
        return "unreachable"
    from langchain_core.exceptions import OutputParserException
    from pydantic import ValidationError

    # The client could not even build a message from the answer (e.g. empty tool arguments).
    if isinstance(error, OutputParserException | ValidationError | json.JSONDecodeError):
        return "malformed"
    return f"error:{type(error).__name__}"


@dataclass(frozen=True)
class _Call:
    """What one choose() call carries through the chain."""

    profile: WalletProfile
    dna: StyleDNA
    baseline: StyleParams
    persona: str
    prompt: str
    prompt_sha256: str


class _Stored(msgspec.Struct):
    params: dict[str, Any]
    provenance: dict[str, Any]
    words: TokenWords | None = None  # absent in answers stored before words


class LLMOrchestrator:
    """Any OpenAI-compatible endpoint (OpenAI, vLLM, Ollama, llama.cpp) behind a bounded schema."""

    name = "llm"
    version = "1"

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout_s: float = 20.0,
        retries: int = 2,
        max_tokens: int = 256,
        seed: int = 0,
        strict: bool | None = None,
        answers: Any = None,
        answers_ttl_s: float = 30 * 24 * 3600,
        http_client: Any = None,
        chat_model: Any = None,
        prompt_shape: str = "compact",
    ) -> None:
        if prompt_shape not in PROMPT_SHAPES:
            raise ValueError(f"prompt_shape must be one of {PROMPT_SHAPES}")
        self.prompt_shape = prompt_shape
        self.model = model
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_tokens = max_tokens
        self.seed = seed
        self.strict = strict
        self.answers = answers  # optional redis.asyncio.Redis: remembers answers by prompt hash
        self.answers_ttl_ms = int(answers_ttl_s * 1000)
        # The whole call, retries and backoff included, may not outlast this.
        self.deadline_s = timeout_s * (retries + 1) + 2.0
        self._rule_based = RuleBasedOrchestrator()
        self.base_url = base_url
        self._api_key = api_key or "not-needed"  # local servers take any key; the client insists on one
        self._http_client = http_client  # an httpx.AsyncClient to share a pool, or to watch the wire
        self._given_model = chat_model  # tests may pass a stand-in for ChatOpenAI
        self._loop: asyncio.AbstractEventLoop | None = None
        self._owned_client: Any = None
        self.chat_model: Any = chat_model
        self._chains: dict[str, Any] = {}

    def _bind_to_loop(self) -> None:
        """One ChatOpenAI (and HTTP pool) per event loop.

        langchain-openai caches one default httpx client per (base_url, timeout) for the whole
        process; its connections belong to the loop that opened them, so a second
        `asyncio.run` (a CLI, a test) would fail with "Event loop is closed".
        """
        loop = asyncio.get_running_loop()
        if self._given_model is not None or loop is self._loop:
            return
        import httpx
        from langchain_openai import ChatOpenAI
        from pydantic import SecretStr

        self.chat_model = ChatOpenAI(
            model=self.model,
            base_url=self.base_url,
            api_key=SecretStr(self._api_key),
            temperature=0,
            seed=self.seed,
            timeout=self.timeout_s,
            max_retries=self.retries,
            # langchain-openai sends max_completion_tokens, which llama.cpp ignores.
            extra_body={"max_tokens": self.max_tokens},
            http_async_client=self._http_client or self._own_client(httpx.AsyncClient(timeout=self.timeout_s)),
        )
        self._chains = {}
        self._loop = loop

    def _own_client(self, client: Any) -> Any:
        self._owned_client = client
        return client

    async def aclose(self) -> None:
        """Close the HTTP pool this orchestrator opened (not one it was given)."""
        client, self._owned_client = self._owned_client, None
        if client is not None:
            await client.aclose()

    def _request_fingerprint(self, schema: dict[str, Any], prompt: str) -> str:
        return _sha256(
            canonical_json(
                {
                    "v": COMPACT_PROMPT_VERSION if self.prompt_shape == "compact" else PROMPT_VERSION,
                    "model": self.model,
                    "messages": [{"role": "user", "content": prompt}],
                    "tool": schema,
                    "temperature": 0,
                    "seed": self.seed,
                    "max_tokens": self.max_tokens,
                }
            )
        )

    def _schema(self, dna: StyleDNA) -> dict[str, Any]:
        return compact_schema(dna) if self.prompt_shape == "compact" else style_schema(dna)

    def _prompt(self, profile: WalletProfile, dna: StyleDNA, baseline: StyleParams, persona: str) -> str:
        if self.prompt_shape == "compact":
            return build_compact_prompt(profile, dna, persona)
        return build_prompt(profile, dna, baseline, persona)

    def _chain(self, dna: StyleDNA) -> Any:
        self._bind_to_loop()
        key = dna.sha256()  # one orchestrator has one prompt shape
        chain = self._chains.get(key)
        if chain is not None:
            return chain
        from langchain_core.messages import HumanMessage
        from langchain_core.runnables import RunnableLambda

        structured = self.chat_model.with_structured_output(
            self._schema(dna), method="function_calling", include_raw=True, strict=self.strict
        )

        async def ask(payload: dict[str, Any]) -> Orchestration:
            call: _Call = payload["call"]
            answer = await structured.ainvoke([HumanMessage(content=call.prompt)])
            return self._accept(call, answer)

        async def fall_back(payload: dict[str, Any]) -> Orchestration:
            return self._fallback(payload["call"], payload["error"])

        chain = RunnableLambda(ask).with_fallbacks(
            [RunnableLambda(fall_back)], exceptions_to_handle=(Exception,), exception_key="error"
        )
        self._chains[key] = chain
        return chain

    def _provenance(self, call: _Call) -> dict[str, Any]:
        return {
            "orchestrator": self.name,
            "version": self.version,
            "model": self.model,
            "prompt_sha256": call.prompt_sha256,
            "temperature": 0,
            "seed": self.seed,
            "persona": call.persona,
        }

    def _accept(self, call: _Call, answer: dict[str, Any]) -> Orchestration:
        raw = answer.get("raw")
        raw_text = _answer_text(raw)[:MAX_HASHED_RESPONSE]
        response_sha256 = _sha256(raw_text.encode())
        extra = getattr(raw, "additional_kwargs", {}) or {}
        if extra.get("refusal"):
            raise LLMRefusal("the model refused", response_sha256)
        parsed = answer.get("parsed")
        if parsed is None:
            invalid = getattr(raw, "invalid_tool_calls", None) or []
            if not (getattr(raw, "tool_calls", None) or invalid):
                raise LLMRefusal("no function call in the answer", response_sha256)
            error = answer.get("parsing_error") or (invalid[0].get("error") if invalid else None)
            raise LLMMalformed(f"function call arguments are not valid JSON: {str(error)[:120]}", response_sha256)
        compact = self.prompt_shape == "compact"
        try:
            params, clamps = interpret_answer(parsed, call.dna, call.baseline, numbers_from_baseline=compact)
        except LLMMalformed as exc:
            exc.response_sha256 = response_sha256
            raise
        words = template_words(params.to_dict(), call.persona, call.dna.words)
        if compact and call.dna.words.writer == "model":  # the template stands in for each word it got wrong
            words = check_words(
                parsed.get("name"),
                parsed.get("description"),
                fallback=words,
                config=call.dna.words,
                deny=call.dna.deny,
                address=call.profile.address,
                generic=(call.dna.name, call.dna.collection_id),
            )
        reported = (getattr(raw, "response_metadata", {}) or {}).get("model_name")
        provenance = {
            **self._provenance(call),
            "response_sha256": response_sha256,
            "clamps": clamps,
            "fallback": None,
        }
        if reported and reported != self.model:
            provenance["model_reported"] = str(reported)[:120]
        return Orchestration(
            params=params, orchestrator=self.name, persona=call.persona, provenance=provenance, words=words
        )

    def _fallback(self, call: _Call, error: BaseException) -> Orchestration:
        reason = _failure_reason(error)
        # The detail stays in the log: provenance is published with the token, and error text
        # comes from a server (it may name hosts or echo input).
        log.warning("LLM orchestrator fell back to rule-based: %s (%s)", reason, str(error)[:200])
        fallback: dict[str, Any] = {"reason": reason}
        response_sha256 = getattr(error, "response_sha256", None)
        if response_sha256:
            fallback["response_sha256"] = response_sha256
        return Orchestration(
            params=call.baseline,
            orchestrator=self._rule_based.name,
            persona=call.persona,
            words=template_words(call.baseline.to_dict(), call.persona, call.dna.words),
            provenance={
                **self._provenance(call),
                "orchestrator": self._rule_based.name,
                "version": self._rule_based.version,
                "clamps": [],
                "fallback": {"from": self.name, **fallback},
            },
        )

    async def _remembered(self, key: str, call: _Call) -> Orchestration | None:
        if self.answers is None:
            return None
        try:
            raw = await self.answers.get(key)
            if raw is None:
                return None
            stored = msgspec.json.decode(raw, type=_Stored)
            params = StyleParams.from_dict(stored.params)
            persona = str(stored.provenance.get("persona", ""))
            return Orchestration(
                params=params,
                orchestrator=self.name,
                persona=persona,
                provenance=stored.provenance,
                words=stored.words or template_words(params.to_dict(), persona, call.dna.words),
            )
        except Exception as exc:  # noqa: BLE001 - a store that cannot be read is only a missed shortcut
            log.warning("LLM answer store read failed: %s", type(exc).__name__)
            return None

    async def _remember(self, key: str, result: Orchestration) -> None:
        if self.answers is None:
            return
        try:
            stored = _Stored(params=result.params.to_dict(), provenance=result.provenance, words=result.words)
            body = msgspec.json.encode(stored)
            await self.answers.set(key, body, px=self.answers_ttl_ms)
        except Exception as exc:  # noqa: BLE001
            log.warning("LLM answer store write failed: %s", type(exc).__name__)

    async def choose(self, profile: WalletProfile, dna: StyleDNA) -> Orchestration:
        """The model's choice (or the rule-based fallback), then the collection's context rules."""
        return with_app_context(await self._choose(profile, dna), profile, dna)

    async def _choose(self, profile: WalletProfile, dna: StyleDNA) -> Orchestration:
        # What the answer store keeps: the choice before the context rules move it.
        baseline, persona = rule_based_params(profile, dna)
        schema = self._schema(dna)
        prompt = self._prompt(profile, dna, baseline, persona)
        call = _Call(profile, dna, baseline, persona, prompt, self._request_fingerprint(schema, prompt))
        store_key = f"pm:llm:{self.model}:{call.prompt_sha256}"
        remembered = await self._remembered(store_key, call)
        if remembered is not None and _inside(remembered.params, dna):
            return remembered
        try:
            result: Orchestration = await asyncio.wait_for(
                self._chain(dna).ainvoke({"call": call}), timeout=self.deadline_s
            )
        except Exception as exc:  # noqa: BLE001 - nothing escapes: the rule-based answer always exists
            result = self._fallback(call, exc)
        if not _inside(result.params, dna):
            result = self._fallback(call, LLMMalformed("params outside the DNA after clamping"))
        if result.orchestrator == self.name:
            await self._remember(store_key, result)
        return result


def _inside(params: StyleParams, dna: StyleDNA) -> bool:
    try:
        dna.validate(params)
    except Exception:  # noqa: BLE001
        return False
    return True
