"""Confirmed mints per second and gas per token: the service's minter on PersonaMint v2, on anvil.

Run from the repository root (about 5 minutes; also as `python benchmarks/mint_throughput.py`):
    python -m benchmarks.mint_throughput          # the three parts below, then the two summary lines
    python -m benchmarks.mint_throughput --block-time 1 --gas-limit 300000000   # one custom run

With no arguments it prints, in one run:
1. gas per token of v2 and of v1 (benchmarks/baseline, the contract v2 replaced): one mintBatch of
   100 fresh recipients ÷ 100, a single mint, a voucher mint, with a breakdown (benchmarks.contract_gas);
2. the chain at its limit: 30M gas blocks every 2 s, 3,000 mints through chain.minter; the ceiling
   is the block gas limit ÷ v2's gas per token (part 1, this run) ÷ the block time, and the
   steady state (every block between the first and the last block with our mints, empty ones
   included) is reported apart from ramp-up and tail. Goal: >= 90 % of the ceiling;
3. automine: the naive web3.py loop against chain.minter, median of 3 fresh anvils. Goal: >= 50x.

The naive path is what a user would write with web3.py: build the transaction (nonce,
gas estimate and fees from the node), sign, send, wait for the receipt, repeat. Its
receipt polling interval is 5 ms, not web3's default 100 ms, and its provider caches
eth_chainId, so it is not handicapped. Each repeat runs both paths on one fresh anvil,
naive first. Both mint to distinct fresh wallets with distinct token URIs; a mint counts
once its receipt is in (1 confirmation).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    # Run as a script (`python benchmarks/mint_throughput.py`): make the repository importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eth_account import Account
from web3 import HTTPProvider, Web3

from chain.contract import PersonaMint, _abi, deploy_persona_mint
from chain.dev_accounts import dev_account
from chain.minter import Minter, MinterConfig
from chain.rpc import JsonRpc
from chain.token_uri import CODEC_RAW, token_uri, uri_parts
from chain.web3 import connect_web3
from devstack.anvil import AnvilProcess


@dataclass(frozen=True)
class Run:
    name: str
    mints: int
    seconds: float
    gas_per_token: float
    txs: int

    @property
    def rate(self) -> float:
        return self.mints / self.seconds


def _requests(count: int) -> list[tuple[bytes, str, str]]:
    return [(os.urandom(32), Account.create().address, token_uri(os.urandom(32), CODEC_RAW)) for _ in range(count)]


async def _deploy(url: str) -> str:
    w3 = connect_web3(url)
    admin, minter = dev_account(0), dev_account(1)
    deployment = await deploy_persona_mint(
        w3, admin, name="Bench", symbol="BENCH", admin=admin.address, minter=minter.address
    )
    await w3.provider.disconnect()
    return deployment.address


def naive(url: str, address: str, count: int) -> Run:
    """build → sign → send → wait for the receipt → repeat, with web3.py's own helpers."""
    # Caching chain id and the like is a documented web3.py switch any careful user flips.
    w3 = Web3(HTTPProvider(url, cache_allowed_requests=True))
    signer = dev_account(1)
    contract = w3.eth.contract(address=Web3.to_checksum_address(address), abi=list(_abi()))
    gas_total = 0
    start = time.perf_counter()
    for request_id, recipient, uri in _requests(count):
        digest, codec = uri_parts(uri)
        tx = contract.functions.mint(recipient, request_id, digest, codec).build_transaction(
            {"from": signer.address, "nonce": w3.eth.get_transaction_count(signer.address, "pending")}
        )
        signed = signer.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120, poll_latency=0.005)
        assert receipt["status"] == 1
        gas_total += receipt["gasUsed"]
    seconds = time.perf_counter() - start
    return Run("naive web3.py loop", count, seconds, gas_total / count, count)


async def ours(url: str, address: str, count: int, config: MinterConfig) -> Run:
    run, _ = await ours_with_blocks(url, address, count, config)
    return run


def _table(runs: list[Run], title: str) -> str:
    lines = [title, f"{'path':<36}{'mints':>7}{'seconds':>10}{'mints/s':>10}{'txs':>6}{'gas/token':>11}"]
    for run in runs:
        lines.append(
            f"{run.name:<36}{run.mints:>7}{run.seconds:>10.2f}{run.rate:>10.1f}{run.txs:>6}{run.gas_per_token:>11,.0f}"
        )
    if len(runs) == 2:
        lines.append(f"ratio (ours / naive): {runs[1].rate / runs[0].rate:.1f}x")
    return "\n".join(lines)


@dataclass(frozen=True)
class SteadyState:
    """Mints per block between ramp-up (the first block with our mints) and tail (the last)."""

    blocks: int
    mints: int
    block_time: float
    per_block: tuple[int, ...]

    @property
    def rate(self) -> float:
        return self.mints / (self.blocks * self.block_time) if self.blocks else 0.0


def steady_state(block_numbers: list[int], block_time: float) -> SteadyState:
    """From each mint's block: the blocks strictly between the first and last that hold ours,
    empty ones included (a stall counts against the minter)."""
    first, last = min(block_numbers), max(block_numbers)
    counts = dict.fromkeys(range(first + 1, last), 0)
    for number in block_numbers:
        if number in counts:
            counts[number] += 1
    return SteadyState(len(counts), sum(counts.values()), block_time, tuple(counts.values()))


async def ours_with_blocks(url: str, address: str, count: int, config: MinterConfig) -> tuple[Run, list[int]]:
    """chain.minter (batched, pipelined) for `count` mints; the run, and each mint's block number."""
    w3 = connect_web3(url)
    rpc = JsonRpc(url)
    minter = Minter(rpc, dev_account(1), PersonaMint(w3, address), config)
    requests = _requests(count)
    await minter.start()
    start = time.perf_counter()
    receipts = await asyncio.gather(*(minter.mint(rid, recipient, uri) for rid, recipient, uri in requests))
    seconds = time.perf_counter() - start
    await minter.stop()
    await rpc.aclose()
    await w3.provider.disconnect()
    assert len({receipt.token_id for receipt in receipts}) == count, "duplicate token ids"
    assert all(r.recipient == recipient for r, (_, recipient, _) in zip(receipts, requests, strict=True))
    by_tx = {receipt.tx_hash: (receipt.gas_used or 0) * receipt.batch_size for receipt in receipts}
    run = Run("chain.minter (batched, pipelined)", count, seconds, sum(by_tx.values()) / count, len(by_tx))
    return run, [receipt.block_number for receipt in receipts]


def chain_limit(gas_per_token: float, *, mints: int, block_time: float, gas_limit: int, config: MinterConfig) -> str:
    """Part 2: the minter against the ceiling of `gas_limit` blocks every `block_time` seconds."""
    ceiling = gas_limit / gas_per_token / block_time
    with AnvilProcess(block_time=block_time, gas_limit=gas_limit) as node:
        run, blocks = asyncio.run(ours_with_blocks(node.url, asyncio.run(_deploy(node.url)), mints, config))
    steady = steady_state(blocks, block_time)
    share = steady.rate / ceiling
    lines = [
        f"the chain at its limit: gas limit {gas_limit:,}, a block every {block_time:g} s, {mints:,} mints, "
        f"gas budget {config.gas_budget:,}/tx, max batch {config.max_batch}, gas margin {config.gas_margin:g}",
        f"ceiling: {gas_limit:,} / {gas_per_token:,.0f} gas per token (v2, batch of 100, this run) / "
        f"{block_time:g} s = {ceiling:.1f} mints/s",
        f"all: {run.mints} mints in {run.seconds:.1f} s = {run.rate:.1f} mints/s over {run.txs} txs, "
        f"{run.gas_per_token:,.0f} gas/token",
        f"steady state: {steady.mints} mints in {steady.blocks} blocks = {steady.rate:.1f} mints/s "
        f"(per block: {', '.join(map(str, steady.per_block))})",
        f"goal steady state >= 90 % of the ceiling: {share:.1%} ({'met' if share >= 0.9 else 'MISSED'}); "
        f"before v2: 105 mints/s = 58 % (1 s blocks, v1)",
    ]
    return "\n".join(lines)


def automine(repeat: int, mints: int, naive_mints: int) -> tuple[str, float]:
    """Part 3: naive vs ours on automine, medians of `repeat` fresh anvils; (table, ratio)."""
    config = MinterConfig(gas_budget=24_000_000, max_batch=150, poll_s=0.02)
    naive_runs: list[Run] = []
    our_runs: list[Run] = []
    for _ in range(repeat):
        with AnvilProcess() as node:
            naive_runs.append(naive(node.url, asyncio.run(_deploy(node.url)), naive_mints))
            our_runs.append(asyncio.run(ours(node.url, asyncio.run(_deploy(node.url)), mints, config)))
    table = [_median(naive_runs), _median(our_runs)]
    ratio = table[1].rate / table[0].rate
    lines = _table(table, f"automine, gas limit 30,000,000; median of {repeat}").splitlines()[:-1]
    lines.append("ours, every run (mints/s): " + ", ".join(f"{run.rate:.0f}" for run in our_runs))
    lines.append("naive, every run (mints/s): " + ", ".join(f"{run.rate:.1f}" for run in naive_runs))
    lines.append(f"goal ours / naive >= 50x: {ratio:.1f}x ({'met' if ratio >= 50 else 'MISSED'}); before v2: 49x")
    return "\n".join(lines), ratio


def _median(runs: list[Run]) -> Run:
    middle = sorted(runs, key=lambda run: run.rate)[len(runs) // 2]
    seconds = statistics.median(run.seconds for run in runs)
    return Run(middle.name, middle.mints, seconds, middle.gas_per_token, middle.txs)


def full_run() -> None:
    """No arguments: gas (v1 and v2), the chain at its limit, automine; then the two summary lines."""
    from benchmarks.contract_gas import measure_both, report

    v1, v2 = measure_both()
    print("\n".join(report(v1, v2)), flush=True)
    gas = v2["batch"]["total"]
    print(flush=True)
    print(chain_limit(gas, mints=3000, block_time=2.0, gas_limit=30_000_000, config=LIMIT_CONFIG), flush=True)
    print(flush=True)
    table, ratio = automine(3, 1000, 1000)
    print(table)
    print(f"gas per token (v2, batch of 100): {gas:.0f}")
    print(f"ratio (ours / naive): {ratio:.1f}x")


# Blocks full of our batches: several transactions a block, each small enough that the last one
# still fits in what the block has left (a block admits a transaction by its gas *limit*).
# The service's own settings for a chain it may fill: PERSONAMINT_MINT_GAS_BUDGET=5000000,
# PERSONAMINT_MINT_MAX_BATCH=400 (and the default gas margin, 1.05).
LIMIT_CONFIG = MinterConfig(gas_budget=5_000_000, max_batch=400, poll_s=0.1)


def main(argv: list[str] | None = None) -> None:
    if not (argv if argv is not None else sys.argv[1:]):
        full_run()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mints", type=int, default=1000, help="mints per path")
    parser.add_argument("--naive-mints", type=int, default=None, help="mints for the naive path (default: --mints)")
    parser.add_argument("--block-time", type=float, default=None, help="interval mining (seconds); default automine")
    parser.add_argument("--gas-limit", type=int, default=None, help="block gas limit (default 300M with --block-time)")
    parser.add_argument("--gas-budget", type=int, default=None, help="gas per mintBatch transaction")
    parser.add_argument("--max-batch", type=int, default=None, help="mints per transaction at most")
    parser.add_argument("--gas-margin", type=float, default=None, help="gas limit = estimate x this (+20k)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each path; the table shows medians")
    args = parser.parse_args(argv)

    interval = args.block_time is not None
    gas_limit = args.gas_limit or (300_000_000 if interval else None)
    budget = args.gas_budget or (60_000_000 if interval else 24_000_000)
    max_batch = args.max_batch or (400 if interval else 150)
    naive_count = args.naive_mints if args.naive_mints is not None else (5 if interval else args.mints)
    config = MinterConfig(
        gas_budget=budget,
        max_batch=max_batch,
        poll_s=0.02 if not interval else 0.1,
        gas_margin=args.gas_margin or MinterConfig.gas_margin,
    )
    mode = f"block time {args.block_time:g}s, gas limit {gas_limit:,}" if interval else "automine, gas limit 30,000,000"

    naive_runs: list[Run] = []
    our_runs: list[Run] = []
    blocks: list[int] = []
    for _ in range(args.repeat):
        # One fresh anvil per repeat, naive first: anvil answers more slowly after big batch
        # blocks, and that must not count against the naive path.
        with AnvilProcess(block_time=args.block_time, gas_limit=gas_limit) as node:
            if naive_count:
                naive_runs.append(naive(node.url, asyncio.run(_deploy(node.url)), naive_count))
            run, blocks = asyncio.run(ours_with_blocks(node.url, asyncio.run(_deploy(node.url)), args.mints, config))
            our_runs.append(run)

    table = [_median(naive_runs)] if naive_runs else []
    table.append(_median(our_runs))
    title = f"{mode}; gas budget {budget:,}/tx, max batch {max_batch}; median of {args.repeat}"
    print(_table(table, title))
    if interval:
        steady = steady_state(blocks, args.block_time)
        print(f"steady state (last run): {steady.rate:.1f} mints/s, per block {list(steady.per_block)}")
    if args.repeat > 1:
        print("ours, every run (mints/s):", ", ".join(f"{run.rate:.0f}" for run in our_runs))
        if naive_runs:
            print("naive, every run (mints/s):", ", ".join(f"{run.rate:.1f}" for run in naive_runs))


if __name__ == "__main__":
    main()
