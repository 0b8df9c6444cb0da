"""A generated chain where every wallet's truth is known, and a check of what the history reader makes of it.

`generate` seeds anvil with random but realistic token activity among N wallets and a few
outsiders (NFTs move only from their owner, ERC-1155 balances never go negative) and keeps,
per planned log, who its parties are. The traps are deliberate: ERC-721 transfers between
two other parties whose token id is uint160(a victim wallet) (so the victim's topic-3
filter matches them), ERC-1155 transfers relayed by an operator that is neither party,
TransferBatch, self transfers, mints and burns through the zero address, ERC-20 amounts
equal to a wallet's address, and plain ETH transactions (nonce, balance; no logs).

The truth is derived from the plan (who sent, who received, who relayed), never by decoding
topics, and never with the code under test. `read_wallets` reads each wallet the way the
service does (RpcHistorySource, its summary, build_profile) and `compare` checks every log
and every profile counter against that truth.

Conventions the truth shares with the service (its definitions, not its code): one ERC-1155
TransferBatch log moves as many tokens as it lists ids; the zero address is a counterparty
(mints and burns are movements); self transfers count as transfers but have no counterparty
and do not change what is held; an operator that is neither party made an interaction.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Literal

from eth_utils.address import to_checksum_address

from personalization.history import RpcHistorySource, WalletHistory, history_rpc
from personalization.profile import WalletProfile, build_profile
from personalization.registry import LABELS, ContractRegistry
from tests.support import log_emitter_extra as raw
from tests.support.log_emitter import SWAP_EVENT, TRANSFER, Chain, fresh_address

ZERO = to_checksum_address("0x" + "00" * 20)
RECENT_BLOCKS = 50_000  # summarize's default window: the truth counts recent events in the same window
Standard = Literal["erc20", "erc721", "erc1155", "protocol"]
Movement = tuple[str, str, str, str, int, int, int]  # standard, direction, contract, counterparty, block, id, amount


@dataclass(frozen=True)
class Interacted:
    """A log that is the wallet's interaction with a contract, not a transfer."""

    contract: str
    topic0: str
    block_number: int


# A wallet's reading of one log: its token movements, or one interaction, or nothing (None).
Attribution = tuple[Movement, ...] | Interacted


def _topic(value: int | str | bytes) -> str:
    if isinstance(value, bytes):
        return "0x" + value.rjust(32, b"\x00").hex()
    number = int(value, 16) if isinstance(value, str) else value
    return "0x" + number.to_bytes(32, "big").hex()


def _topics(*values: int | str | bytes) -> tuple[str, ...]:
    return tuple(_topic(value) for value in values)


@dataclass
class ChainLog:
    """One log as planned (who moved what) and, once mined, where it landed."""

    category: str
    standard: Standard
    contract: str
    topics: tuple[str, ...]
    data: str
    sender: str  # the protocol event's user
    receiver: str
    movements: tuple[tuple[int, int], ...] = ()  # (token id or -1 for ERC-20, amount)
    operator: str | None = None  # ERC-1155 only
    tx_hash: str = ""
    log_index: int = -1
    block_number: int = -1

    @property
    def identity(self) -> tuple[str, int]:
        return self.tx_hash, self.log_index

    def attribution(self, wallet: str) -> Attribution | None:
        """What `wallet`'s history must hold for this log: from the plan, not the topics."""
        if self.standard == "protocol":
            return self._interaction() if self.sender == wallet else None
        if wallet in (self.sender, self.receiver):
            if self.sender == self.receiver:
                direction, counterparty = "self", wallet
            elif self.receiver == wallet:
                direction, counterparty = "in", self.sender
            else:
                direction, counterparty = "out", self.receiver
            return tuple(
                sorted(
                    (self.standard, direction, self.contract, counterparty, self.block_number, token_id, amount)
                    for token_id, amount in self.movements
                )
            )
        if self.operator == wallet:
            return self._interaction()
        return None

    def _interaction(self) -> Interacted:
        return Interacted(self.contract, self.topics[0], self.block_number)


@dataclass
class WalletTruth:
    """One wallet's ledger, kept while generating."""

    address: str
    funded: bool
    tx_count: int = 0
    deployed: list[str] = field(default_factory=list)
    balance_wei: int = 0
    first_state_block: int | None = None  # first block with a balance or a nonce
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)  # (standard, direction)
    per_contract: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    interactions: int = 0
    counterparties: set[str] = field(default_factory=set)
    blocks: list[int] = field(default_factory=list)  # one per movement or interaction

    def record(self, log: ChainLog) -> None:
        found = log.attribution(self.address)
        if found is None:
            return
        if isinstance(found, Interacted):
            self.interactions += 1
            self.per_contract[log.contract]["interaction"] += 1
            self.blocks.append(log.block_number)
            return
        for movement in found:
            standard, direction, contract, counterparty, block = movement[:5]
            self.moves[(standard, direction)] += 1
            self.per_contract[contract][standard] += 1
            self.blocks.append(block)
            if direction != "self":
                self.counterparties.add(counterparty)


@dataclass
class GeneratedChain:
    """The seeded chain and its truth."""

    head: int
    wallets: tuple[str, ...]
    outsiders: tuple[str, ...]
    contracts: dict[str, str]  # role → address
    logs: list[ChainLog]
    eth_transfers: int
    truth: dict[str, WalletTruth]
    nft_owner: dict[tuple[str, int], str]  # (ERC-721 contract, id) → owner
    item_balance: Counter[tuple[str, int, str]]  # (ERC-1155 contract, id, owner) → amount

    def categories(self) -> Counter[str]:
        return Counter(log.category for log in self.logs)

    def decoys(self) -> tuple[int, int]:
        """(wallet, log) pairs where a wallet is named in a topic but is not a party:
        (token-id or other decoys that must count for nothing, operator-only relays that are interactions)."""
        topics = {wallet: _topic(wallet) for wallet in self.wallets}
        nothing = relays = 0
        for log in self.logs:
            for wallet, topic in topics.items():
                if topic in log.topics[1:] and wallet not in (log.sender, log.receiver):
                    if log.operator == wallet:
                        relays += 1
                    else:
                        nothing += 1
        return nothing, relays

    def expected_profile(self, wallet: str, registry: ContractRegistry, chain_id: int) -> dict[str, Any]:
        """Every WalletProfile counter, from the ledger alone."""
        truth = self.truth[wallet]
        moved = {s: sum(n for (std, d), n in truth.moves.items() if std == s) for s in ("erc20", "erc721", "erc1155")}
        per_contract = {contract: sum(kinds.values()) for contract, kinds in truth.per_contract.items()}
        labels: Counter[str] = Counter()
        for contract, events in per_contract.items():
            known = registry.lookup(chain_id, contract)
            if known is not None:
                labels[known.label] += events
        labels["infrastructure"] += len(truth.deployed)
        first_log = min(truth.blocks) if truth.blocks else None
        starts = [b for b in (truth.first_state_block, first_log) if b is not None]

        def top(standards: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
            counts = {c: sum(k[s] for s in standards) for c, k in truth.per_contract.items()}
            ranked = sorted(((c, n) for c, n in counts.items() if n), key=lambda pair: (-pair[1], pair[0]))
            return tuple(ranked[:5])

        return {
            "tx_count": truth.tx_count,
            "balance_eth": round(truth.balance_wei / 10**18, 6),
            "is_contract": False,
            "erc20_transfers": moved["erc20"],
            "erc721_transfers": moved["erc721"],
            "erc1155_transfers": moved["erc1155"],
            "transfers_in": sum(n for (_, d), n in truth.moves.items() if d == "in"),
            "transfers_out": sum(n for (_, d), n in truth.moves.items() if d == "out"),
            "interactions": truth.interactions,
            "distinct_contracts": len(per_contract),
            "distinct_counterparties": len(truth.counterparties),
            "nfts_held": sum(1 for owner in self.nft_owner.values() if owner == wallet),
            "items_held": sum(1 for (_, _, owner), n in self.item_balance.items() if owner == wallet and n > 0),
            "contracts_deployed": len(truth.deployed),
            "first_active_block": first_log,
            "last_active_block": max(truth.blocks) if truth.blocks else None,
            "active_blocks": len(set(truth.blocks)),
            "labels": {label: labels[label] for label in LABELS if labels[label]},
            "top_contracts": top(("erc20", "erc721", "erc1155", "interaction")),
            "first_activity_block": min(starts) if starts else None,
            "recent_events": sum(1 for b in truth.blocks if b > self.head - RECENT_BLOCKS),
            "flows": {f"{s}_{d}": truth.moves[(s, d)] for s in ("erc20", "erc721", "erc1155") for d in ("in", "out")},
            "top_collections": top(("erc721", "erc1155")),
            "top_tokens": top(("erc20",)),
        }


class _Generator:
    def __init__(self, chain: Chain, deployer: str, wallets: int, seed: int) -> None:
        self.chain = chain
        self.deployer = deployer
        self.rng = random.Random(seed)
        self.wallets = tuple(fresh_address(f"attribution:{seed}:wallet:{i}") for i in range(wallets))
        self.outsiders = tuple(fresh_address(f"attribution:{seed}:outsider:{i}") for i in range(max(3, wallets // 5)))
        # Every sixth wallet never holds ETH (nonce 0, balance 0): its age must come from its first log.
        self.truth = {w: WalletTruth(w, funded=i % 6 != 5) for i, w in enumerate(self.wallets)}
        self.funded = [w for w in self.wallets if self.truth[w].funded]
        self.parties = (*self.wallets, *self.outsiders)
        self.contracts: dict[str, str] = {}
        self.logs: list[ChainLog] = []
        self.eth_transfers = 0
        self.next_nft: dict[str, int] = defaultdict(lambda: 1)
        self.nft_lots: list[tuple[str, int, int]] = []  # (contract, first id, count): one owner each
        self.nft_owner: dict[tuple[str, int], str] = {}
        self.item_balance: Counter[tuple[str, int, str]] = Counter()

    # ---- sending -------------------------------------------------------------------------

    def _send(self, tx: dict[str, Any], planned: list[ChainLog]) -> dict[str, Any]:
        receipt = self.chain.receipt(self.chain.call("eth_sendTransaction", tx))
        if receipt["status"] != "0x1":
            raise RuntimeError(f"generator transaction reverted: {tx}")
        mined = receipt["logs"]
        if len(mined) != len(planned):
            raise RuntimeError(f"planned {len(planned)} logs, the emitter wrote {len(mined)}")
        for log, entry in zip(planned, mined, strict=True):
            written = (to_checksum_address(entry["address"]), tuple(entry["topics"]), entry["data"])
            if written != (log.contract, log.topics, log.data):
                raise RuntimeError(f"the emitter wrote {entry}, the plan says {log}")
            log.tx_hash = entry["transactionHash"]
            log.log_index = int(entry["logIndex"], 16)
            log.block_number = int(entry["blockNumber"], 16)
            self.logs.append(log)
            for truth in self.truth.values():
                truth.record(log)
        sender = to_checksum_address(tx["from"])
        if sender in self.truth:
            truth = self.truth[sender]
            truth.tx_count += 1
            truth.balance_wei -= int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
        return dict(receipt)

    def _emit(self, kind: Literal["erc20", "event"], category: str, sender: str, receiver: str, count: int) -> None:
        """ERC-20 Transfers (amounts from a random start, one up each) or protocol events naming `sender`."""
        contract = self.contracts["event" if kind == "event" else f"erc20-{self.rng.randrange(2)}"]
        start = self.rng.choice((self.rng.randrange(1, 10**6), self.rng.randrange(10**18, 10**24)))
        if self.rng.random() < 0.2:  # an amount equal to some wallet's address: data, never a topic
            start = int(self.rng.choice(self.wallets), 16)
        erc20 = kind == "erc20"
        topics = _topics(TRANSFER, sender, receiver) if erc20 else _topics(SWAP_EVENT, sender)
        planned = [
            ChainLog(category, "erc20" if erc20 else "protocol", contract, topics, _topic(value), sender, receiver)
            for value in range(start, start + count)
        ]
        for log, value in zip(planned, range(start, start + count), strict=True):
            log.movements = ((-1, value),) if erc20 else ()
        self._send(self.chain.emit_tx(self.deployer, contract, sender, receiver, start, count), planned)

    def _emit_items(
        self, contract: str, category: str, operator: str, sender: str, receiver: str, moves: list[tuple[int, int]]
    ) -> None:
        """One ERC-1155 log (TransferSingle for one id, else TransferBatch), written once."""
        if len(moves) == 1:
            topics, data = raw.transfer_single(operator, sender, receiver, *moves[0])
        else:
            topics, data = raw.transfer_batch(operator, sender, receiver, [m[0] for m in moves], [m[1] for m in moves])
        log = ChainLog(
            category, "erc1155", contract, _topics(*topics), "0x" + data.hex(), sender, receiver, tuple(moves)
        )
        log.operator = operator
        self._send(raw.raw_tx(self.deployer, contract, 1, topics, data), [log])
        for token_id, amount in moves:
            if sender != ZERO:
                assert self.item_balance[(contract, token_id, sender)] >= amount, "moved more than held"
                self.item_balance[(contract, token_id, sender)] -= amount
            if receiver != ZERO:
                self.item_balance[(contract, token_id, receiver)] += amount

    def _pay(self, sender: str, receiver: str, value: int) -> dict[str, Any]:
        receipt = self._send({"from": sender, "to": receiver, "value": hex(value), "gas": hex(21_000)}, [])
        block = int(receipt["blockNumber"], 16)
        for wallet, sign in ((sender, -1), (receiver, 1)):
            if wallet in self.truth:
                truth = self.truth[wallet]
                truth.balance_wei += sign * value
                if truth.first_state_block is None:
                    truth.first_state_block = block
        if sender != self.deployer:
            self.eth_transfers += 1
        return receipt

    # ---- the plan ------------------------------------------------------------------------

    def setup(self) -> None:
        self.chain.call("anvil_autoImpersonateAccount", True)
        for kind in ("erc20", "erc721"):
            for index in range(2):
                self.contracts[f"{kind}-{index}"] = self.chain.deploy(self.deployer, kind)
        self.contracts["event"] = self.chain.deploy(self.deployer, "event")
        self.chain.mine(3)
        for wallet in self.funded:
            self._pay(self.deployer, wallet, 10**19 + self.rng.randrange(10**18))
            self.chain.mine(self.rng.randrange(3))
        # The first wallet deploys one of the two ERC-1155 collections itself: a builder.
        builder = self.funded[0]
        for index, signer in enumerate((self.deployer, builder)):
            tx = {"from": signer, "data": "0x" + raw.init_code().hex(), "gas": hex(200_000)}
            receipt = self._send(tx, [])
            self.contracts[f"erc1155-{index}"] = to_checksum_address(receipt["contractAddress"])
        self.truth[builder].deployed.append(self.contracts["erc1155-1"])

    def _other(self, *not_these: str, pool: tuple[str, ...] | None = None) -> str:
        choices = [p for p in (pool or self.parties) if p not in not_these]
        return self.rng.choice(choices)

    def erc20(self, pattern: str = "") -> None:
        pattern = pattern or self.rng.choices(("transfer", "self", "mint", "burn"), (6, 1, 1, 1))[0]
        sender = self.rng.choice(self.parties)
        receiver = {"transfer": self._other(sender), "self": sender, "mint": sender, "burn": ZERO}[pattern]
        if pattern == "mint":
            sender = ZERO
        category = "erc20" if pattern == "transfer" else f"erc20-{pattern}"
        self._emit("erc20", category, sender, receiver, self.rng.randint(1, 12))

    def erc721_mint(self) -> None:
        kind = f"erc721-{self.rng.randrange(2)}"
        contract, count = self.contracts[kind], self.rng.randint(1, 6)
        receiver = self.rng.choice(self.parties)
        start = self.next_nft[contract]
        self.next_nft[contract] += count
        self._emit_nfts(contract, "erc721-mint", ZERO, receiver, start, count)

    def _emit_nfts(self, contract: str, category: str, sender: str, receiver: str, start: int, count: int) -> None:
        planned = [
            ChainLog(
                category, "erc721", contract, _topics(TRANSFER, sender, receiver, token_id), "0x", sender, receiver
            )
            for token_id in range(start, start + count)
        ]
        for log in planned:
            log.movements = ((int(log.topics[3], 16), 1),)
        self._send(self.chain.emit_tx(self.deployer, contract, sender, receiver, start, count), planned)
        for token_id in range(start, start + count):
            assert self.nft_owner.get((contract, token_id), ZERO) == sender, "an NFT moved by someone else"
            if receiver == ZERO:
                del self.nft_owner[(contract, token_id)]
            else:
                self.nft_owner[(contract, token_id)] = receiver
        if receiver != ZERO:
            self.nft_lots.append((contract, start, count))

    def erc721_move(self, pattern: str = "") -> None:
        lots = [lot for lot in self.nft_lots if (lot[0], lot[1]) in self.nft_owner]
        if not lots:
            self.erc721_mint()
            return
        contract, start, count = lot = self.rng.choice(lots)
        owner = self.nft_owner[(contract, start)]
        moved = self.rng.randint(1, count)
        self.nft_lots.remove(lot)
        if moved < count:
            self.nft_lots.append((contract, start + moved, count - moved))
        pattern = pattern or self.rng.choices(("transfer", "self", "burn"), (8, 1, 1))[0]
        receiver = {"transfer": self._other(owner), "self": owner, "burn": ZERO}[pattern]
        category = "erc721" if pattern == "transfer" else f"erc721-{pattern}"
        self._emit_nfts(contract, category, owner, receiver, start, moved)

    def erc721_id_trap(self) -> None:
        """Mint token id uint160(victim) to A, then A → B: neither log is the victim's."""
        victim = self.rng.choice(self.wallets)
        contract = self.contracts[f"erc721-{self.rng.randrange(2)}"]
        token_id = int(victim, 16)
        if (contract, token_id) in self.nft_owner:
            return
        first = self._other(victim)
        second = self._other(victim, first)
        self._emit_nfts(contract, "erc721-id-trap", ZERO, first, token_id, 1)
        self.nft_lots.remove((contract, token_id, 1))
        self._emit_nfts(contract, "erc721-id-trap", first, second, token_id, 1)

    def _holding(self) -> tuple[str, int, str, int]:
        """Some positive ERC-1155 balance (minted first if there is none)."""
        if not any(n > 0 for n in self.item_balance.values()):
            self.erc1155_mint()
        return self.rng.choice(sorted((c, i, o, n) for (c, i, o), n in self.item_balance.items() if n > 0))

    def erc1155_mint(self) -> None:
        contract = self.contracts[f"erc1155-{self.rng.randrange(2)}"]
        receiver = self.rng.choice(self.parties)
        operator = self.rng.choice((receiver, self.rng.choice(self.outsiders)))
        moves = [(self.rng.randint(1, 30), self.rng.randint(1, 100)) for _ in range(self.rng.choice((1, 1, 2, 3)))]
        moves = list(dict(moves).items())  # distinct ids in one batch
        self._emit_items(contract, "erc1155-mint", operator, ZERO, receiver, moves)

    def erc1155_move(self, *, relayed: bool, pattern: str = "") -> None:
        contract, token_id, owner, balance = self._holding()
        if relayed:
            pattern = "transfer"
        pattern = pattern or self.rng.choices(("transfer", "self", "burn"), (8, 1, 1))[0]
        receiver = {"transfer": self._other(owner), "self": owner, "burn": ZERO}[pattern]
        operator = owner
        if relayed:  # approved for all: a wallet (mostly) that is neither party moves the tokens
            pool = self.wallets if self.rng.random() < 0.8 else self.outsiders
            operator = self._other(owner, receiver, pool=pool)
        category = "erc1155-relayed" if relayed else ("erc1155" if pattern == "transfer" else f"erc1155-{pattern}")
        self._emit_items(contract, category, operator, owner, receiver, [(token_id, self.rng.randint(1, balance))])

    def erc1155_batch(self, relayed: bool | None = None) -> None:
        contract, _, owner, _ = self._holding()

        def held() -> list[tuple[int, int]]:
            return sorted(
                (i, n) for (c, i, o), n in self.item_balance.items() if c == contract and o == owner and n > 0
            )

        if len(held()) < 2:  # a batch needs two ids: mint the owner some first
            self._emit_items(contract, "erc1155-mint", owner, ZERO, owner, [(31, 5), (32, 7)])
        picked = self.rng.sample(held(), min(len(held()), self.rng.randint(2, 4)))
        moves = [(token_id, self.rng.randint(1, balance)) for token_id, balance in picked]
        receiver = self._other(owner)
        relayed = self.rng.random() < 0.5 if relayed is None else relayed
        operator = self._other(owner, receiver, pool=self.wallets) if relayed else owner
        category = "erc1155-batch-relayed" if relayed else "erc1155-batch"
        self._emit_items(contract, category, operator, owner, receiver, moves)

    def protocol(self) -> None:
        user = self.rng.choice(self.wallets)
        self._emit("event", "protocol", user, user, self.rng.randint(1, 8))

    def eth(self) -> None:
        sender = self.rng.choice(self.funded)
        receiver = self._other(sender, pool=(*self.funded, *self.outsiders))
        self._pay(sender, receiver, self.rng.randrange(1, 10**17))

    def outsiders_only(self) -> None:
        sender = self.rng.choice(self.outsiders)
        self._emit("erc20", "outsiders-only", sender, self._other(sender, pool=self.outsiders), 3)

    def run(self, logs: int) -> GeneratedChain:
        self.setup()
        steps = (
            (self.erc20, 18),
            (self.erc721_mint, 8),
            (self.erc721_move, 14),
            (self.erc721_id_trap, 6),
            (self.erc1155_mint, 6),
            (lambda: self.erc1155_move(relayed=False), 10),
            (lambda: self.erc1155_move(relayed=True), 8),
            (self.erc1155_batch, 8),
            (self.protocol, 6),
            (self.eth, 12),
            (self.outsiders_only, 2),
        )
        # One of each first, so that even a small chain holds every trap; then at random.
        prelude: list[Callable[[], None]] = [
            *(partial(self.erc20, pattern) for pattern in ("transfer", "self", "mint", "burn")),
            self.erc721_mint,
            *(partial(self.erc721_move, pattern) for pattern in ("transfer", "self", "burn")),
            self.erc721_id_trap,
            self.erc1155_mint,
            partial(self.erc1155_move, relayed=True),
            partial(self.erc1155_batch, relayed=False),
            partial(self.erc1155_batch, relayed=True),
            *(partial(self.erc1155_move, relayed=False, pattern=p) for p in ("transfer", "self", "burn")),
            self.protocol,
            self.eth,
            self.outsiders_only,
        ]
        for action in prelude:
            action()
            self.chain.mine(1)
        actions, weights = zip(*steps, strict=True)
        while len(self.logs) < logs:
            self.rng.choices(actions, weights)[0]()
            self.chain.mine(self.rng.randrange(3))
        return GeneratedChain(
            head=self.chain.head(),
            wallets=self.wallets,
            outsiders=self.outsiders,
            contracts=dict(self.contracts),
            logs=self.logs,
            eth_transfers=self.eth_transfers,
            truth=self.truth,
            nft_owner=dict(self.nft_owner),
            item_balance=Counter({key: n for key, n in self.item_balance.items() if n}),
        )


def generate(chain: Chain, deployer: str, *, wallets: int = 40, logs: int = 3_000, seed: int = 16) -> GeneratedChain:
    """Seed anvil (auto-impersonation on) until at least `logs` logs exist; deterministic per seed."""
    return _Generator(chain, deployer, wallets, seed).run(logs)


# ---- reading and comparing -------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """What the service read for one wallet."""

    history: WalletHistory
    profile: WalletProfile


async def read_wallets(
    url: str, wallets: tuple[str, ...], block: int, registry: ContractRegistry, *, concurrency: int = 8
) -> dict[str, Reading]:
    """Each wallet as the history stage reads it: RpcHistorySource, then its summary and build_profile."""
    gate = asyncio.Semaphore(concurrency)
    async with history_rpc(url) as rpc:
        source = RpcHistorySource(rpc)

        async def one(wallet: str) -> Reading:
            async with gate:
                history = await source.fetch(wallet, block=block)
            # build_profile folds the raw history through the service's own summary first.
            return Reading(history, build_profile(history, registry))

        readings = await asyncio.gather(*(one(wallet) for wallet in wallets))
    return dict(zip(wallets, readings, strict=True))


@dataclass(frozen=True)
class Misattribution:
    """One log one wallet reads differently from the truth."""

    wallet: str
    log: ChainLog | None  # None: the reader found a log the generator never wrote
    expected: Attribution | None
    actual: Attribution | None


@dataclass
class Comparison:
    logs: int
    details: list[Misattribution] = field(default_factory=list)
    counters_compared: int = 0
    counter_mismatches: list[tuple[str, str, Any, Any]] = field(default_factory=list)  # wallet, name, want, got

    @property
    def misattributed_logs(self) -> int:
        """Distinct generated logs read wrongly by any wallet, plus logs that were never generated."""
        known = {m.log.identity for m in self.details if m.log is not None}
        return len(known) + sum(1 for m in self.details if m.log is None)

    def misattributed_by_category(self) -> Counter[str]:
        seen = {(m.log.category, m.log.identity) for m in self.details if m.log is not None}
        counts = Counter(category for category, _ in seen)
        counts["never generated"] = sum(1 for m in self.details if m.log is None)
        return +counts


_MISSING = object()


def compare(generated: GeneratedChain, readings: dict[str, Reading], registry: ContractRegistry) -> Comparison:
    """Every log for every wallet, then every profile counter, against the truth."""
    result = Comparison(logs=len(generated.logs))
    for wallet, reading in readings.items():
        result.details += _compare_logs(wallet, reading.history, generated.logs)
        want = generated.expected_profile(wallet, registry, reading.history.chain_id)
        for name, expected in want.items():
            actual = getattr(reading.profile, name, _MISSING)
            result.counters_compared += 1
            if actual != expected:
                result.counter_mismatches.append((wallet, name, expected, actual))
    return result


def _compare_logs(wallet: str, history: WalletHistory, logs: list[ChainLog]) -> list[Misattribution]:
    moved: dict[tuple[str, int], list[Movement]] = defaultdict(list)
    for t in history.transfers:
        token_id = -1 if t.token_id is None else t.token_id
        entry = (t.standard, t.direction, t.contract, t.counterparty, t.block_number, token_id, t.amount)
        moved[(t.tx_hash, t.log_index)].append(entry)
    # Interactions carry no log index: they match logs by (tx, contract, topic0, block).
    interacted = Counter((i.tx_hash, Interacted(i.contract, i.topic0, i.block_number)) for i in history.interactions)
    expected = {log.identity: log.attribution(wallet) for log in logs}
    actual: dict[tuple[str, int], Attribution | None] = {}
    for log in logs:
        want = expected[log.identity]
        if log.identity in moved:
            actual[log.identity] = tuple(sorted(moved.pop(log.identity)))
        elif isinstance(want, Interacted) and interacted[(log.tx_hash, want)] > 0:
            interacted[(log.tx_hash, want)] -= 1
            actual[log.identity] = want
        else:
            actual[log.identity] = None
    found: list[Misattribution] = []
    # Interactions left over were read from logs of their group that should have given something else.
    groups: dict[tuple[str, Interacted], list[ChainLog]] = defaultdict(list)
    for log in logs:
        groups[(log.tx_hash, Interacted(log.contract, log.topics[0], log.block_number))].append(log)
    for (tx_hash, interaction), extra in interacted.items():
        spare = [log for log in groups.get((tx_hash, interaction), []) if actual[log.identity] is None]
        spare.sort(key=lambda log: expected[log.identity] is None)  # a missed transfer first
        for index in range(extra):
            if index < len(spare):
                actual[spare[index].identity] = interaction
            else:
                found.append(Misattribution(wallet, None, None, interaction))
    found += [Misattribution(wallet, None, None, tuple(sorted(entries))) for entries in moved.values()]
    found += [
        Misattribution(wallet, log, expected[log.identity], actual[log.identity])
        for log in logs
        if actual[log.identity] != expected[log.identity]
    ]
    return found
