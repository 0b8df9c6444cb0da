"""History attribution: misattributed logs over a generated chain where every wallet's truth is known.

Run from the repository root: `python -m benchmarks.history_attribution [--wallets 40] [--logs 3000]`.

Seeds anvil (archive mode, so ages come from historical state) with random, realistic token
activity among --wallets wallets and a few outsiders (tests/support/attribution.py), keeping
each wallet's truth from the plan itself. The traps: ERC-721 transfers between two other
parties whose token id is uint160(a victim wallet), ERC-1155 TransferSingle and TransferBatch
relayed by an operator that is neither party, self transfers, mints and burns, ERC-20
amounts equal to wallet addresses, plain ETH transactions. Then reads every wallet as the
service does (RpcHistorySource, its summary, build_profile, builtin registry) and compares
every log and every profile counter. A misattributed log is one some wallet reads wrongly:
counted for a wallet that is not its party, in the wrong direction or standard, or missed.
Exits 1 if any log is misattributed or any counter differs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chain.dev_accounts import dev_account
from devstack.anvil import AnvilProcess
from personalization.registry import ContractRegistry
from tests.support.attribution import Comparison, GeneratedChain, compare, generate, read_wallets
from tests.support.log_emitter import Chain

SHOWN = 10  # mismatches printed in full


def report(generated: GeneratedChain, comparison: Comparison) -> list[str]:
    lines = []
    logs = generated.categories()
    wrong = comparison.misattributed_by_category()
    lines.append(f"{'category':24} {'logs':>6} {'misattributed':>14}")
    for category in sorted(logs):
        if logs[category] or wrong[category]:
            lines.append(f"{category:24} {logs[category]:6d} {wrong[category]:14d}")
    if wrong["never generated"]:
        lines.append(f"{'never generated':24} {0:6d} {wrong['never generated']:14d}")
    movements = sum(len(log.movements) for log in generated.logs)
    lines.append(f"{'total':24} {len(generated.logs):6d} {comparison.misattributed_logs:14d}")
    decoys, relays = generated.decoys()
    funded = sum(1 for truth in generated.truth.values() if truth.funded)
    lines.append(
        f"wallets: {len(generated.wallets)} ({funded} with ETH, {len(generated.wallets) - funded} log-only), "
        f"outsiders: {len(generated.outsiders)}, contracts: {len(generated.contracts)}, head block: {generated.head}"
    )
    lines.append(
        f"logs: {len(generated.logs)} ({movements} token movements), plain ETH transactions between wallets: "
        f"{generated.eth_transfers}"
    )
    lines.append(
        f"traps: {decoys} (wallet, log) pairs name a wallet in a topic that is not a party (must count for nothing), "
        f"{relays} name it only as the ERC-1155 operator (an interaction)"
    )
    lines.append(
        f"profile counters compared: {comparison.counters_compared}, mismatched: {len(comparison.counter_mismatches)}"
    )
    for miss in comparison.details[:SHOWN]:
        log = miss.log
        where = (
            "a log never generated"
            if log is None
            else f"{log.category} log {log.tx_hash}#{log.log_index} in block {log.block_number} on {log.contract}, "
            f"from {log.sender} to {log.receiver}, operator {log.operator}, topics {log.topics}, data {log.data}"
        )
        lines.append(
            f"  MISATTRIBUTED for {miss.wallet}: {where}\n    expected {miss.expected}\n    read     {miss.actual}"
        )
    mismatched_names = Counter(name for _, name, _, _ in comparison.counter_mismatches)
    if mismatched_names:
        lines.append(f"  counters that differ (wallets): {dict(mismatched_names)}")
    for wallet, name, expected, actual in comparison.counter_mismatches[:SHOWN]:
        lines.append(f"  COUNTER {name} for {wallet}: expected {expected!r}, read {actual!r}")
    verdict = "met" if comparison.misattributed_logs == 0 else "missed"
    lines.append(f"misattributed logs: {comparison.misattributed_logs} of {len(generated.logs)} (goal 0: {verdict})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wallets", type=int, default=40)
    parser.add_argument("--logs", type=int, default=3_000, help="generate at least this many logs")
    parser.add_argument("--seed", type=int, default=16)
    args = parser.parse_args(argv)
    if args.wallets < 3:
        parser.error("--wallets must be at least 3 (a trap needs a victim and two other parties)")

    registry = ContractRegistry.builtin()
    with AnvilProcess(extra_args=("--prune-history", "1000000")) as node:
        started = time.perf_counter()
        chain = Chain(node.url)
        try:
            generated = generate(chain, dev_account(0).address, wallets=args.wallets, logs=args.logs, seed=args.seed)
        finally:
            chain.close()
        seeding_s = time.perf_counter() - started
        started = time.perf_counter()
        readings = asyncio.run(read_wallets(node.url, generated.wallets, generated.head, registry))
        reading_s = time.perf_counter() - started
    comparison = compare(generated, readings, registry)
    print(f"seeded in {seeding_s:.1f}s (seed {args.seed}); read {len(readings)} wallets in {reading_s:.2f}s")
    for line in report(generated, comparison):
        print(line)
    return 1 if comparison.misattributed_logs or comparison.counter_mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
