"""Seed a fresh local chain with six demo wallets whose histories read as six different personas."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.dev_accounts import dev_account
from chain.rpc import JsonRpc, RpcCallError
from devstack.contracts import sample_contracts
from personalization.deployments import created_address
from personalization.errors import HistoryError
from personalization.history import history_rpc

ARCHETYPES = ("gamer", "trader", "collector", "newcomer", "whale", "builder")
# Anvil dev accounts: 0 and 1 run the service (admin, minter); 9 deploys the sample
# contracts, so on a fresh chain their addresses never change; 2..7 fund the wallets.
DEPLOYER_ACCOUNT = 9
FUNDERS = {"gamer": 2, "trader": 3, "collector": 4, "whale": 6, "builder": 7}
FUNDING_WEI = {
    "gamer": 5 * 10**18,
    "trader": 5 * 10**18,
    "collector": 5 * 10**18,
    "whale": 5_000 * 10**18,
    "builder": 10 * 10**18,
}
# Contract name → registry label. WelcomeToken is left out on purpose: a labelled airdrop
# would make the newcomer's single event "mostly DeFi" and read as a trader.
REGISTRY_LABELS = {
    "DemoUSD": "defi",
    "DemoWETH": "defi",
    "DemoGov": "defi",
    "DemoDex": "defi",
    "GameHeroes": "gaming",
    "GameItems": "gaming",
    "ArtCollection": "art",
}
TOKEN = 10**18
MAX_UINT256 = 2**256 - 1
# maxFeePerGas == maxPriorityFeePerGas makes the price paid exactly this, whatever the base
# fee does as blocks fill, so every seeded balance is the same on every fresh chain.
GAS_PRICE_WEI = 5 * 10**9
# Fixed limits (no estimation round trips); generous, since unused gas is refunded.
DEPLOY_GAS = 4_000_000
CALL_GAS = 500_000
ETH_TRANSFER_GAS = 21_000
RECEIPT_TIMEOUT_S = 60.0
_POLL_S = 0.01
_NUDGE_AFTER_S = 1.0  # no new receipt for this long: mine a block (see _run_phase)

_Item = TypeVar("_Item")


class SeedError(RuntimeError):
    """The chain is not a fresh anvil dev chain, or a seeding transaction failed."""


@dataclass(frozen=True)
class SeedResult:
    """What seed_demo put on chain: wallets, contracts, and per archetype what its history holds."""

    chain_id: int
    wallets: dict[str, str]
    contracts: dict[str, str]
    expected: dict[str, dict[str, Any]]
    seconds: float
    tx_count: int
    block_number: int = 0


def wallet_account(archetype: str, seed: int = 0) -> LocalAccount:
    """The demo wallet for `archetype` (its key is derived from public strings: demo chains only)."""
    if archetype not in ARCHETYPES:
        raise ValueError(f"archetype must be one of {ARCHETYPES}")
    account: LocalAccount = Account.from_key(keccak(text=f"personamint-demo:{seed}:{archetype}"))
    return account


def _bystander(seed: int, role: str, index: int) -> str:
    # Counterparties need no key: they only ever receive.
    return to_checksum_address(keccak(text=f"personamint-demo:{seed}:{role}:{index}")[12:])


class _Draws:
    """Deterministic choices from (seed, stream): stable across Python versions, unlike `random`."""

    def __init__(self, seed: int, stream: str) -> None:
        self._prefix = f"personamint-demo:{seed}:{stream}:"
        self._counter = 0

    def below(self, bound: int) -> int:
        value = int.from_bytes(keccak(text=f"{self._prefix}{self._counter}"), "big")
        self._counter += 1
        return value % bound

    def between(self, low: int, high: int) -> int:
        return low + self.below(high - low + 1)

    def sample(self, population: Sequence[_Item], count: int) -> list[_Item]:
        pool = list(population)
        for index in range(count):
            swap = index + self.below(len(pool) - index)
            pool[index], pool[swap] = pool[swap], pool[index]
        return pool[:count]


def _calldata(signature: str, *args: Any) -> bytes:
    types = [part for part in signature[signature.index("(") + 1 : -1].split(",") if part]
    return function_signature_to_4byte_selector(signature) + abi_encode(types, list(args))


@dataclass(frozen=True)
class _Tx:
    label: str
    sender: LocalAccount
    nonce: int
    to: str | None
    data: bytes
    value: int
    gas: int


@dataclass
class _Ledger:
    """What one wallet's history will hold, counted as the plan is written."""

    counts: Counter[str] = field(default_factory=Counter)
    events_by_contract: Counter[str] = field(default_factory=Counter)
    held: set[tuple[str, int]] = field(default_factory=set)
    wei_in: int = 0
    wei_out: int = 0

    def transfer(self, standard: str, direction: str, contract: str, count: int = 1) -> None:
        self.counts[f"{standard}_{direction}"] += count
        self.events_by_contract[contract] += count

    def nft(self, direction: str, contract: str, token_id: int) -> None:
        self.transfer("erc721", direction, contract)
        if direction == "in":
            self.held.add((contract, token_id))
        else:
            self.held.remove((contract, token_id))

    def interaction(self, contract: str, kind: str | None = None) -> None:
        self.counts["interactions"] += 1
        self.events_by_contract[contract] += 1
        if kind is not None:
            self.counts[kind] += 1


class _Plan:
    """Every transaction to send, in phases; nonces are assigned locally as they are planned."""

    def __init__(self, nonces: dict[str, int], phases: int = 2) -> None:
        self._nonces = dict(nonces)
        self.phases: list[list[_Tx]] = [[] for _ in range(phases)]
        self.ledgers = {archetype: _Ledger() for archetype in ARCHETYPES}
        self.contracts: dict[str, str] = {}

    def send(
        self,
        phase: int,
        sender: LocalAccount,
        label: str,
        *,
        to: str | None,
        data: bytes = b"",
        value: int = 0,
        gas: int = CALL_GAS,
    ) -> _Tx:
        nonce = self._nonces[sender.address]
        self._nonces[sender.address] = nonce + 1
        tx = _Tx(label, sender, nonce, to, data, value, gas)
        self.phases[phase].append(tx)
        return tx

    def call(
        self, phase: int, sender: LocalAccount, label: str, to: str, signature: str, *args: Any, gas: int = CALL_GAS
    ) -> _Tx:
        """Plan a contract call: `signature` is the Solidity one, e.g. "mint(address,uint256)"."""
        return self.send(phase, sender, label, to=to, data=_calldata(signature, *args), gas=gas)

    def deploy(self, phase: int, sender: LocalAccount, name: str, contract: str, *constructor: Any) -> str:
        entry = sample_contracts()["contracts"][contract]
        inputs: list[dict[str, Any]] = next(
            (item["inputs"] for item in entry["abi"] if item["type"] == "constructor"), []
        )
        data = bytes.fromhex(entry["bytecode"][2:]) + abi_encode([arg["type"] for arg in inputs], list(constructor))
        tx = self.send(phase, sender, f"deploy {name}", to=None, data=data, gas=DEPLOY_GAS)
        address = created_address(sender.address, tx.nonce)
        self.contracts[name] = address
        return address

    @property
    def tx_count(self) -> int:
        return sum(len(phase) for phase in self.phases)


_MINT = "mint(address,uint256)"
_APPROVE = "approve(address,uint256)"
_DEPOSIT = "deposit(address,uint256)"
_NFT_TRANSFER = "transferFrom(address,address,uint256)"


def _plan_contracts(plan: _Plan, deployer: LocalAccount) -> None:
    for name, symbol in (("DemoUSD", "DUSD"), ("DemoWETH", "DWETH"), ("DemoGov", "DGOV")):
        plan.deploy(0, deployer, name, "DemoToken", f"Demo {symbol}", symbol)
    plan.deploy(0, deployer, "WelcomeToken", "DemoToken", "Welcome Token", "WLC")
    plan.deploy(0, deployer, "GameHeroes", "DemoCollection", "Demo Game Heroes", "HERO")
    plan.deploy(0, deployer, "ArtCollection", "DemoCollection", "Demo Art", "ART")
    plan.deploy(0, deployer, "GameItems", "DemoItems", "https://demo.personamint.dev/items/{id}.json")
    dex = plan.deploy(0, deployer, "DemoDex", "DemoDex")
    for token in ("DemoUSD", "DemoWETH", "DemoGov"):
        # Swap liquidity, so trader swaps never run the reserves dry.
        plan.call(0, deployer, f"liquidity {token}", plan.contracts[token], _MINT, dex, 1_000_000 * TOKEN)


def _plan_funding(plan: _Plan, wallets: dict[str, str]) -> None:
    for archetype, funder in FUNDERS.items():
        value = FUNDING_WEI[archetype]
        sender = dev_account(funder)
        plan.send(0, sender, f"fund {archetype}", to=wallets[archetype], value=value, gas=ETH_TRANSFER_GAS)
        plan.ledgers[archetype].wei_in += value


def _plan_gamer(plan: _Plan, deployer: LocalAccount, gamer: LocalAccount, seed: int) -> None:
    draws, ledger = _Draws(seed, "gamer"), plan.ledgers["gamer"]
    items, heroes = plan.contracts["GameItems"], plan.contracts["GameHeroes"]
    inventory: Counter[int] = Counter()
    for drop in range(12):
        ids = draws.sample(range(1, 25), 5)
        amounts = [draws.between(1, 12) for _ in ids]
        signature = "mintBatch(address,uint256[],uint256[])"
        plan.call(0, deployer, f"loot drop {drop}", items, signature, gamer.address, ids, amounts)
        inventory.update(dict(zip(ids, amounts, strict=True)))
        ledger.transfer("erc1155", "in", "GameItems", len(ids))
    for first_id in (1, 6, 11):
        plan.call(0, deployer, f"hero drop {first_id}", heroes, _MINT, gamer.address, 5)
        for token_id in range(first_id, first_id + 5):
            ledger.nft("in", "GameHeroes", token_id)
    # Trading items away is what raises the gamer's own nonce: players act, not just receive.
    signature = "safeTransferFrom(address,address,uint256,uint256,bytes)"
    for trade in range(20):
        owned = sorted(token_id for token_id, amount in inventory.items() if amount > 0)
        token_id = owned[draws.below(len(owned))]
        amount = draws.between(1, min(3, inventory[token_id]))
        inventory[token_id] -= amount
        player = _bystander(seed, "player", trade % 6)
        plan.call(
            1, gamer, f"gamer gives item {token_id}", items, signature, gamer.address, player, token_id, amount, b""
        )
        ledger.transfer("erc1155", "out", "GameItems")
    owned = sorted(token_id for token_id, amount in inventory.items() if amount > 0)
    bundle = draws.sample(owned, 4)
    guild = _bystander(seed, "guild", 0)
    signature = "safeBatchTransferFrom(address,address,uint256[],uint256[],bytes)"
    plan.call(1, gamer, "gamer gives the guild a bundle", items, signature, gamer.address, guild, bundle, [1] * 4, b"")
    ledger.transfer("erc1155", "out", "GameItems", len(bundle))
    for index, token_id in enumerate(draws.sample(range(1, 16), 3)):
        player = _bystander(seed, "player", index)
        plan.call(1, gamer, f"gamer trades hero {token_id}", heroes, _NFT_TRANSFER, gamer.address, player, token_id)
        ledger.nft("out", "GameHeroes", token_id)


def _plan_trader(plan: _Plan, deployer: LocalAccount, trader: LocalAccount, seed: int) -> None:
    draws, ledger, contracts = _Draws(seed, "trader"), plan.ledgers["trader"], plan.contracts
    dex = contracts["DemoDex"]
    tokens = ("DemoUSD", "DemoWETH", "DemoGov")
    wallet: Counter[str] = Counter()
    for token in tokens:
        plan.call(0, deployer, f"trader's {token}", contracts[token], _MINT, trader.address, 10_000 * TOKEN)
        wallet[token] += 10_000 * TOKEN
        ledger.transfer("erc20", "in", token)
    for token in tokens:
        plan.call(1, trader, f"trader approves {token}", contracts[token], _APPROVE, dex, MAX_UINT256)
        ledger.interaction(token)
    for token in tokens:
        plan.call(1, trader, f"trader deposits {token}", dex, _DEPOSIT, contracts[token], 1_000 * TOKEN)
        wallet[token] -= 1_000 * TOKEN
        ledger.transfer("erc20", "out", token)
        ledger.interaction("DemoDex", "deposits")
    for swap in range(60):
        amount_in = draws.between(10, 250) * TOKEN + draws.below(TOKEN)
        token_in = tokens[draws.below(len(tokens))]
        if wallet[token_in] < amount_in:
            token_in = max(tokens, key=lambda token: wallet[token])
        token_out = [token for token in tokens if token != token_in][draws.below(2)]
        # DemoDex.quote: 1:1 less 0.3%.
        amount_out = amount_in * 9_970 // 10_000
        label = f"trader swap {swap} {token_in}->{token_out}"
        signature = "swap(address,address,uint256)"
        plan.call(1, trader, label, dex, signature, contracts[token_in], contracts[token_out], amount_in)
        wallet[token_in] -= amount_in
        wallet[token_out] += amount_out
        ledger.transfer("erc20", "out", token_in)
        ledger.transfer("erc20", "in", token_out)
        ledger.interaction("DemoDex", "swaps")
    for token in tokens:
        signature = "withdraw(address,uint256)"
        plan.call(1, trader, f"trader withdraws {token}", dex, signature, contracts[token], 400 * TOKEN)
        ledger.transfer("erc20", "in", token)
        ledger.interaction("DemoDex", "withdrawals")


def _plan_collector(plan: _Plan, deployer: LocalAccount, collector: LocalAccount, seed: int) -> None:
    draws, ledger = _Draws(seed, "collector"), plan.ledgers["collector"]
    art = plan.contracts["ArtCollection"]
    minted = 0
    for drop, size in enumerate((3, 5, 2, 4, 6, 3, 5, 4, 3, 5)):
        # Other patrons collect in between, so the collector's ids are scattered like a real one's.
        others = draws.below(4)
        if others:
            patron = _bystander(seed, "patron", drop)
            plan.call(0, deployer, f"art drop {drop} to a patron", art, _MINT, patron, others)
            minted += others
        plan.call(0, deployer, f"art drop {drop}", art, _MINT, collector.address, size)
        for token_id in range(minted + 1, minted + size + 1):
            ledger.nft("in", "ArtCollection", token_id)
        minted += size
    for index, (_, token_id) in enumerate(draws.sample(sorted(ledger.held), 8)):
        friend = _bystander(seed, "friend", index % 3)
        plan.call(
            1, collector, f"collector gifts art {token_id}", art, _NFT_TRANSFER, collector.address, friend, token_id
        )
        ledger.nft("out", "ArtCollection", token_id)


def _plan_newcomer(plan: _Plan, deployer: LocalAccount, newcomer: LocalAccount) -> None:
    plan.call(0, deployer, "welcome airdrop", plan.contracts["WelcomeToken"], _MINT, newcomer.address, 25 * TOKEN)
    plan.ledgers["newcomer"].transfer("erc20", "in", "WelcomeToken")


def _plan_whale(plan: _Plan, deployer: LocalAccount, whale: LocalAccount, seed: int) -> None:
    ledger = plan.ledgers["whale"]
    dusd, dex = plan.contracts["DemoUSD"], plan.contracts["DemoDex"]
    plan.call(0, deployer, "whale treasury", dusd, _MINT, whale.address, 2_000_000 * TOKEN)
    ledger.transfer("erc20", "in", "DemoUSD")
    plan.call(1, whale, "whale approves DemoUSD", dusd, _APPROVE, dex, 1_500_000 * TOKEN)
    ledger.interaction("DemoUSD")
    plan.call(1, whale, "whale deposits DemoUSD", dex, _DEPOSIT, dusd, 1_500_000 * TOKEN)
    ledger.transfer("erc20", "out", "DemoUSD")
    ledger.interaction("DemoDex", "deposits")
    for index, eth in enumerate((250, 100)):
        cold_wallet = _bystander(seed, "cold-wallet", index)
        plan.send(1, whale, f"whale moves {eth} ETH", to=cold_wallet, value=eth * TOKEN, gas=ETH_TRANSFER_GAS)
        ledger.wei_out += eth * TOKEN


def _plan_builder(plan: _Plan, builder: LocalAccount, seed: int) -> None:
    ledger = plan.ledgers["builder"]
    # Deployed from the builder's own EOA (plain CREATE): history finds them by nonce.
    token = plan.deploy(1, builder, "BuilderToken", "DemoToken", "Builder Token", "BLD")
    ledger.interaction("BuilderToken")  # Ownable's OwnershipTransferred names the builder
    prototypes = plan.deploy(1, builder, "BuilderPrototypes", "DemoCollection", "Builder Prototypes", "PROTO")
    ledger.interaction("BuilderPrototypes")
    dex = plan.deploy(1, builder, "BuilderDex", "DemoDex")
    ledger.counts["deployments"] += 3
    plan.call(1, builder, "builder mints BLD", token, _MINT, builder.address, 1_000_000 * TOKEN)
    ledger.transfer("erc20", "in", "BuilderToken")
    for index in range(6):
        tester = _bystander(seed, "tester", index)
        plan.call(1, builder, f"builder pays tester {index}", token, "transfer(address,uint256)", tester, 500 * TOKEN)
        ledger.transfer("erc20", "out", "BuilderToken")
    plan.call(1, builder, "builder mints prototypes", prototypes, _MINT, builder.address, 2)
    ledger.nft("in", "BuilderPrototypes", 1)
    ledger.nft("in", "BuilderPrototypes", 2)
    plan.call(1, builder, "builder approves its dex", token, _APPROVE, dex, 100_000 * TOKEN)
    ledger.interaction("BuilderToken")
    plan.call(1, builder, "builder seeds its dex", dex, _DEPOSIT, token, 100_000 * TOKEN)
    ledger.transfer("erc20", "out", "BuilderToken")
    ledger.interaction("BuilderDex", "deposits")


def _sign(plan: _Plan, chain_id: int, gas_price: int) -> list[list[tuple[_Tx, str, str]]]:
    """(tx, raw hex, hash hex) per phase; CPU-bound, so it runs off the event loop."""
    signed_phases = []
    for phase in plan.phases:
        signed = []
        for tx in phase:
            fields: dict[str, Any] = {
                "type": 2,
                "chainId": chain_id,
                "nonce": tx.nonce,
                "value": tx.value,
                "data": tx.data,
                "gas": tx.gas,
                "maxFeePerGas": gas_price,
                "maxPriorityFeePerGas": gas_price,
            }
            if tx.to is not None:
                fields["to"] = tx.to
            result = tx.sender.sign_transaction(fields)
            signed.append((tx, "0x" + result.raw_transaction.hex(), "0x" + result.hash.hex()))
        signed_phases.append(signed)
    return signed_phases


async def _explain(rpc: JsonRpc, tx: _Tx, receipt: dict[str, Any]) -> str:
    tx_hash = receipt["transactionHash"]
    if int(receipt["gasUsed"], 16) >= tx.gas:
        return f"{tx.label} ({tx_hash}) ran out of gas"
    call = {"from": tx.sender.address, "data": "0x" + tx.data.hex(), "value": hex(tx.value), "gas": hex(tx.gas)}
    if tx.to is not None:
        call["to"] = tx.to
    try:
        await rpc.call("eth_call", [call, hex(int(receipt["blockNumber"], 16) - 1)])
    except RpcCallError as exc:
        return f"{tx.label} ({tx_hash}) reverted: {exc.rpc_message}"
    return f"{tx.label} ({tx_hash}) reverted (reason unavailable)"


async def _run_phase(rpc: JsonRpc, signed: list[tuple[_Tx, str, str]]) -> list[tuple[_Tx, dict[str, Any]]]:
    """Send every transaction back to back (one batch per sender), then check all receipts."""
    by_sender: dict[str, list[tuple[_Tx, str, str]]] = {}
    for entry in signed:
        by_sender.setdefault(entry[0].sender.address, []).append(entry)

    async def send(entries: list[tuple[_Tx, str, str]]) -> None:
        # One at a time per sender, in nonce order. anvil runs the calls of a JSON-RPC batch
        # concurrently, so a batch can reach its pool out of nonce order, and in automine mode
        # a transaction that waited for its predecessor can then sit in the pool with no block
        # ever mined for it (foundry-rs/foundry#10122). Senders still go side by side.
        for tx, raw, expected in entries:
            got = await rpc.call("eth_sendRawTransaction", [raw])
            if got != expected:
                raise SeedError(f"{tx.label}: node returned hash {got}, signed {expected}")

    try:
        await asyncio.gather(*(send(entries) for entries in by_sender.values()))
    except RpcCallError as exc:
        raise SeedError(f"the node refused a seeding transaction: {exc}") from exc
    # A sender's transactions mine in nonce order: its last receipt means all are in.
    deadline = time.monotonic() + RECEIPT_TIMEOUT_S
    nudge_at = time.monotonic() + _NUDGE_AFTER_S
    waiting = [entries[-1][2] for entries in by_sender.values()]
    while waiting:
        receipts = await rpc.batch([("eth_getTransactionReceipt", [tx_hash]) for tx_hash in waiting])
        still = [tx_hash for tx_hash, receipt in zip(waiting, receipts, strict=True) if receipt is None]
        now = time.monotonic()
        if len(still) < len(waiting):
            nudge_at = now + _NUDGE_AFTER_S
        waiting = still
        if waiting and now > deadline:
            raise SeedError(f"{len(waiting)} seeding transactions not mined within {RECEIPT_TIMEOUT_S:g}s")
        if waiting and now > nudge_at:
            # Should a pooled transaction still be skipped by automine, one more block takes it;
            # the fixed gas price keeps every balance the same however many blocks there are.
            await rpc.call("evm_mine", [])
            nudge_at = now + _NUDGE_AFTER_S
        if waiting:
            await asyncio.sleep(_POLL_S)
    receipts = await rpc.batch([("eth_getTransactionReceipt", [tx_hash]) for _, _, tx_hash in signed])
    failed = [
        (tx, receipt)
        for (tx, _, _), receipt in zip(signed, receipts, strict=True)
        if receipt is None or receipt["status"] != "0x1"
    ]
    if failed:
        reasons = [
            await _explain(rpc, tx, receipt) if receipt else f"{tx.label}: no receipt" for tx, receipt in failed[:5]
        ]
        raise SeedError(f"{len(failed)} seeding transactions failed: " + "; ".join(reasons))
    return [(tx, receipt) for (tx, _, _), receipt in zip(signed, receipts, strict=True)]


def _expected(ledger: _Ledger, tx_count: int, balance_wei: int) -> dict[str, Any]:
    counts = ledger.counts
    labels: Counter[str] = Counter()
    for contract, events in ledger.events_by_contract.items():
        if contract in REGISTRY_LABELS:
            labels[REGISTRY_LABELS[contract]] += events
    if counts["deployments"]:
        labels["infrastructure"] += counts["deployments"]
    expected: dict[str, Any] = {
        key: counts[key]
        for key in (
            "erc20_in",
            "erc20_out",
            "erc721_in",
            "erc721_out",
            "erc1155_in",
            "erc1155_out",
            "interactions",
            "swaps",
            "deposits",
            "withdrawals",
            "deployments",
        )
    }
    for standard in ("erc20", "erc721", "erc1155"):
        expected[f"{standard}_transfers"] = counts[f"{standard}_in"] + counts[f"{standard}_out"]
    expected["transfers_in"] = sum(counts[f"{s}_in"] for s in ("erc20", "erc721", "erc1155"))
    expected["transfers_out"] = sum(counts[f"{s}_out"] for s in ("erc20", "erc721", "erc1155"))
    expected["nfts_held"] = len(ledger.held)
    expected["tx_count"] = tx_count
    expected["balance_wei"] = balance_wei
    expected["labels"] = dict(sorted(labels.items()))
    return expected


def registry_entries(result: SeedResult) -> list[dict[str, Any]]:
    """Known-contracts entries for the labelled sample contracts (ContractRegistry's JSON shape)."""
    return [
        {"chain_id": result.chain_id, "address": result.contracts[name], "name": name, "label": label}
        for name, label in REGISTRY_LABELS.items()
    ]


async def seed_demo(rpc_url: str, *, seed: int = 0, registry_path: Path | None = None) -> SeedResult:
    """Give six wallets (gamer, trader, collector, newcomer, whale, builder) distinct histories.

    Expects a FRESH anvil chain (dev account 9 has sent nothing; raises SeedError otherwise):
    the sample contracts are deployed from it, so their addresses depend only on that. Same
    seed on a fresh chain → same wallets, contracts, counts and balances. Writes the
    known-contracts registry (JSON) to `registry_path` when given.
    """
    started = time.monotonic()
    try:
        async with history_rpc(rpc_url, timeout_s=30.0) as rpc:
            result = await _seed(rpc, seed, started)
    except HistoryError as exc:
        raise SeedError(f"seeding {rpc_url} failed: {exc}") from exc
    if registry_path is not None:
        registry_path.parent.mkdir(parents=True, exist_ok=True)
        registry_path.write_text(json.dumps({"contract": registry_entries(result)}, indent=2) + "\n")
    return result


async def _seed(rpc: JsonRpc, seed: int, started: float) -> SeedResult:
    deployer = dev_account(DEPLOYER_ACCOUNT)
    wallets = {archetype: wallet_account(archetype, seed) for archetype in ARCHETYPES}
    senders = [deployer, *(dev_account(index) for index in FUNDERS.values()), *wallets.values()]
    chain_id_hex, block = await rpc.batch([("eth_chainId", []), ("eth_getBlockByNumber", ["latest", False])])
    chain_id = int(chain_id_hex, 16)
    state = await rpc.batch(
        [("eth_getTransactionCount", [s.address, "pending"]) for s in senders]
        + [("eth_getBalance", [deployer.address, "latest"])]
    )
    nonces: dict[str, int] = {s.address: int(n, 16) for s, n in zip(senders, state, strict=False)}
    if nonces[deployer.address] != 0:
        raise SeedError(
            f"seed_demo expects a fresh chain: dev account {DEPLOYER_ACCOUNT} ({deployer.address}) has "
            f"already sent {nonces[deployer.address]} transactions; restart anvil (without --state) and retry"
        )
    if int(state[-1], 16) < 100 * TOKEN:
        raise SeedError(f"dev account {DEPLOYER_ACCOUNT} is not funded: {rpc.url} is not an anvil dev chain")
    base_fee = int(block.get("baseFeePerGas") or "0x0", 16)
    # The fixed price keeps balances reproducible; a chain whose base fee already nears it
    # is not fresh anyway, and there getting mined matters more.
    gas_price = GAS_PRICE_WEI if 2 * base_fee <= GAS_PRICE_WEI else 2 * base_fee

    plan = _Plan(nonces)
    _plan_contracts(plan, deployer)
    _plan_funding(plan, {archetype: account.address for archetype, account in wallets.items()})
    _plan_gamer(plan, deployer, wallets["gamer"], seed)
    _plan_trader(plan, deployer, wallets["trader"], seed)
    _plan_collector(plan, deployer, wallets["collector"], seed)
    _plan_newcomer(plan, deployer, wallets["newcomer"])
    _plan_whale(plan, deployer, wallets["whale"], seed)
    _plan_builder(plan, wallets["builder"], seed)

    signed_phases = await asyncio.to_thread(_sign, plan, chain_id, gas_price)
    gas_spent: Counter[str] = Counter()
    # Phase 1 (deploy, fund, mint) must be mined before the wallets act on what it gave them.
    for signed in signed_phases:
        for tx, receipt in await _run_phase(rpc, signed):
            gas_spent[tx.sender.address] += int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)

    addresses = [account.address for account in wallets.values()]
    final = await rpc.batch(
        [("eth_getBalance", [address, "latest"]) for address in addresses]
        + [("eth_getTransactionCount", [address, "latest"]) for address in addresses]
        + [("eth_blockNumber", [])]
    )
    expected = {}
    for index, (archetype, account) in enumerate(wallets.items()):
        ledger = plan.ledgers[archetype]
        balance = ledger.wei_in - ledger.wei_out - gas_spent[account.address]
        on_chain, nonce = int(final[index], 16), int(final[len(addresses) + index], 16)
        # A wallet someone had already used would make the recorded expectations a lie.
        if on_chain != balance or nonce != nonces[account.address] + _sent_by(plan, account):
            raise SeedError(
                f"{archetype} wallet {account.address} does not match the plan (balance {on_chain} wei, "
                f"expected {balance}; nonce {nonce}): was the chain fresh?"
            )
        expected[archetype] = _expected(ledger, nonce, balance)
    return SeedResult(
        chain_id=chain_id,
        wallets={archetype: account.address for archetype, account in wallets.items()},
        contracts=dict(plan.contracts),
        expected=expected,
        seconds=round(time.monotonic() - started, 3),
        tx_count=plan.tx_count,
        block_number=int(final[-1], 16),
    )


def _sent_by(plan: _Plan, account: LocalAccount) -> int:
    return sum(1 for phase in plan.phases for tx in phase if tx.sender.address == account.address)


def describe(result: SeedResult) -> str:
    """A plain-text table of the seeded wallets and what their histories hold."""
    columns = ("archetype", "wallet", "txs", "erc20", "erc721", "erc1155", "events", "nfts", "deployed", "ETH")
    rows = [columns]
    for archetype, address in result.wallets.items():
        seeded = result.expected[archetype]
        rows.append(
            (
                archetype,
                address,
                str(seeded["tx_count"]),
                f"{seeded['erc20_in']}/{seeded['erc20_out']}",
                f"{seeded['erc721_in']}/{seeded['erc721_out']}",
                f"{seeded['erc1155_in']}/{seeded['erc1155_out']}",
                str(seeded["interactions"]),
                str(seeded["nfts_held"]),
                str(seeded["deployments"]),
                f"{seeded['balance_wei'] / TOKEN:,.4f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    lines.append(
        f"token transfers in/out; {result.tx_count} transactions in {result.seconds:.2f}s on chain {result.chain_id}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.seed", description=__doc__)
    parser.add_argument("--rpc-url", default="http://127.0.0.1:8545", help="a fresh anvil's JSON-RPC URL")
    parser.add_argument("--seed", type=int, default=0, help="which six wallets (same seed, same wallets)")
    parser.add_argument("--registry", type=Path, help="write the known-contracts JSON here")
    options = parser.parse_args(argv)
    try:
        result = asyncio.run(seed_demo(options.rpc_url, seed=options.seed, registry_path=options.registry))
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(describe(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
