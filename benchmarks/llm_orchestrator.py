"""The LLM orchestrator on the real local model (`personamint llm-server`: llama.cpp + Gemma 3 270M), measured.

Runs the six demo archetypes and N synthetic profiles through `build_orchestrator` (the worker's
path) against a freshly started local server, and prints per answer: used as given / clamped /
replaced by the fallback, seconds, whether the persona's style matches the rubric
(rule_based.persona_of vs the model's four choices), llama.cpp's token counts; then the median
and the goal line. `--before` also runs the old prompt shape (`prompt_shape="full"`, one token
per batch as the server ran before) for the comparison.

    python -m benchmarks.llm_orchestrator [--synthetic 50] [--before]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from personalization.orchestrator.llm import LLMOrchestrator
from personalization.orchestrator.local_llm import LocalLlmServer, gguf_path
from personalization.orchestrator.rule_based import PERSONAS, persona_of
from personalization.profile import WalletProfile
from personalization.style import CHOICE_FIELDS, load_style_dna
from personalization.words import WordsWriter
from tests.support.archetypes import ARCHETYPES, BLANK

ROOT = Path(__file__).resolve().parents[1]
GOAL_S = 3.0
RECORDED_BEFORE_MEDIAN_S = 11.5  # issue #17: six archetypes, old prompt, n_batch 1


def synthetic_profiles(count: int, seed: int = 17) -> list[WalletProfile]:
    """Wallets spread over the rubric's rules (deterministic)."""
    rng = random.Random(seed)
    labels = ("gaming", "defi", "art", "infrastructure")
    out = []
    for i in range(count):
        label = labels[i % len(labels)]
        tx = rng.randint(0, 400)
        events = rng.randint(0, 500)
        out.append(
            replace(
                BLANK,
                address="0x" + f"{i + 1:040x}",
                tx_count=tx,
                balance_eth=rng.choice([0.1, 2.0, 40.0, 2500.0]),
                erc20_transfers=events if label == "defi" else events // 5,
                erc721_transfers=events // 10 if label == "art" else 0,
                erc1155_transfers=events if label == "gaming" else 0,
                transfers_in=events // 2,
                transfers_out=events - events // 2,
                interactions=rng.randint(0, 100),
                nfts_held=rng.randint(0, 20) if label == "art" else 0,
                contracts_deployed=1 if label == "infrastructure" and i % 8 == 3 else 0,
                labels={label: max(1, events)} if events > 3 else {},
            )
        )
    return out


def classify(result: Any) -> str:
    if result.orchestrator != "llm":
        return "replaced"
    words = result.words
    if words is not None and words.source == "replaced":
        return "replaced"
    if result.provenance.get("clamps") or (words is not None and words.source == "clamped"):
        return "clamped"
    return "given"


async def run(
    server: LocalLlmServer, profiles: list[tuple[str, WalletProfile]], shape: str, writer: WordsWriter = "model"
) -> list[dict[str, Any]]:
    """Each profile through the orchestrator; `writer`: who writes the words ([style.words] writer)."""
    dna = load_style_dna(ROOT / "collections" / "default.toml")
    dna = replace(dna, words=replace(dna.words, writer=writer))
    usage: list[dict[str, Any]] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        usage.append(response.json().get("usage") or {})

    rows = []
    async with httpx.AsyncClient(timeout=300, event_hooks={"response": [keep]}) as client:
        orchestrator = LLMOrchestrator(
            base_url=server.base_url,
            model=server.alias,
            timeout_s=300,
            retries=0,
            max_tokens=160,
            http_client=client,
            prompt_shape=shape,
        )
        for label, profile in profiles:
            profile = replace(profile, context={})
            started = time.perf_counter()
            result = await orchestrator.choose(profile, dna)
            seconds = time.perf_counter() - started
            rubric = PERSONAS[persona_of(profile)]
            match = all(getattr(result.params, name) == rubric[name] for name in CHOICE_FIELDS)
            row = {
                "label": label,
                "seconds": seconds,
                "kind": classify(result),
                "match": match,
                "usage": usage[-1] if usage else {},
                "words": result.words,
                "fallback": (result.provenance.get("fallback") or {}).get("reason"),
            }
            rows.append(row)
            words = result.words
            print(
                f"  {label:12s} {seconds:6.2f} s  {row['kind']:8s} rubric={'yes' if match else 'no ':3s} "
                f"prompt={row['usage'].get('prompt_tokens')} gen={row['usage'].get('completion_tokens')} "
                f"fallback={row['fallback']} name={words.name if words else None!r}",
                flush=True,
            )
    return rows


def report(title: str, rows: list[dict[str, Any]]) -> float:
    n = len(rows)
    median = statistics.median(r["seconds"] for r in rows)
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("given", "clamped", "replaced")}
    print(f"{title}: {n} answers")
    for kind, count in kinds.items():
        print(f"  {kind:9s} {count:3d}  {100 * count / n:5.1f} %")
    archetypes = [r for r in rows if not r["label"].startswith("synthetic")]
    matched, matched_archetypes = sum(r["match"] for r in rows), sum(r["match"] for r in archetypes)
    print(f"  rubric persona style matched: {matched}/{n} (archetypes {matched_archetypes}/{len(archetypes)})")
    gen = [r["usage"].get("completion_tokens") or 0 for r in rows]
    print(f"  median generated tokens {statistics.median(gen):.0f}; median seconds per answer {median:.2f}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=50)
    parser.add_argument("--before", action="store_true", help="also run the old prompt shape (slow)")
    args = parser.parse_args()
    profiles = [(name, p) for name, p in ARCHETYPES.items()]
    profiles += [(f"synthetic-{i}", p) for i, p in enumerate(synthetic_profiles(args.synthetic))]
    scratch = Path(tempfile.mkdtemp(prefix="llm-bench-"))
    model = gguf_path(scratch)
    before = RECORDED_BEFORE_MEDIAN_S
    if args.before:
        with LocalLlmServer(model, batch_invariant=True, log_path=scratch / "before.log") as server:
            print("before (full prompt shape, n_batch 1):")
            before = report("before", asyncio.run(run(server, profiles[:6], "full")))
    with LocalLlmServer(model, log_path=scratch / "after.log") as server:
        print("after, the model chooses and the template names ([style.words] writer = template):")
        choosing = report("choices", asyncio.run(run(server, profiles, "compact", "template")))
        print("after, the model chooses and names ([style.words] writer = model, the default):")
        naming = report("choices + words", asyncio.run(run(server, profiles, "compact", "model")))
    label = "measured" if args.before else "recorded"
    print(
        f"before: median {before:.2f} s per answer ({label}); after: {choosing:.2f} s choosing "
        f"({before / choosing:.1f}x), {naming:.2f} s choosing and naming"
    )
    for title, median in (("choices", choosing), ("choices + words", naming)):
        print(f"goal ({title}): median <= {GOAL_S:g} s per answer ({'met' if median <= GOAL_S else 'missed'})")


if __name__ == "__main__":
    main()
