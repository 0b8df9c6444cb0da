"""Read a wallet's on-chain history over plain EVM JSON-RPC into a WalletHistory."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from eth_abi.abi import decode as abi_decode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.rpc import JsonRpc, RpcCallError
from personalization.deployments import TraceMode, find_deployments
from personalization.errors import HISTORY_RPC_ERRORS, HistoryError

TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
TRANSFER_SINGLE_TOPIC = "0x" + keccak(text="TransferSingle(address,address,address,uint256,uint256)").hex()
TRANSFER_BATCH_TOPIC = "0x" + keccak(text="TransferBatch(address,address,address,uint256[],uint256[])").hex()
ZERO_ADDRESS = "0x" + "00" * 20
EMPTY_CODE = (None, "0x", "0x0")


def history_rpc(url: str, *, timeout_s: float = 10.0, retries: int = 4) -> JsonRpc:
    """The JSON-RPC client for history reads (and the API's other reads): its errors are HistoryErrors.

    Transport faults are retried from 0.1 s doubling to 2 s (each wait up to twice that);
    rate-limit answers are not retried: a refused eth_getLogs range is split instead.
    """
    return JsonRpc(
        url,
        timeout_s=timeout_s,
        retries=retries,
        backoff_s=0.2,
        backoff_cap_s=4.0,
        retry_rate_limits=False,
        errors=HISTORY_RPC_ERRORS,
    )


Standard = Literal["erc20", "erc721", "erc1155"]
Direction = Literal["in", "out", "self"]
FirstActivitySource = Literal["state", "logs", "none"]


@dataclass(frozen=True)
class Transfer:
    """One token movement touching the wallet."""

    standard: Standard
    direction: Direction
    contract: str
    counterparty: str
    block_number: int
    token_id: int | None
    amount: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class Interaction:
    """A non-transfer event that names the wallet: a call into some contract."""

    contract: str
    topic0: str
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class WalletHistory:
    """Everything read from the chain for one wallet at one block."""

    chain_id: int
    address: str
    block_number: int
    from_block: int
    balance_wei: int
    nonce: int
    is_contract: bool
    transfers: tuple[Transfer, ...] = field(default=())
    interactions: tuple[Interaction, ...] = field(default=())
    deployed_contracts: tuple[str, ...] = field(default=())
    # From a search over historical account state (or the logs where the node keeps no history).
    first_activity_block: int | None = None
    first_activity_source: FirstActivitySource = "none"
    source: str = "rpc"
    # How deployments were found: "create" (CREATE by nonce only), "trace_filter", "debug_traceTransaction".
    deployments_source: str = ""


def address_topic(address: str) -> str:
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")


@functools.lru_cache(maxsize=65_536)
def _checksum(address: str) -> str:
    # Checksumming hashes the address; a busy wallet repeats a few addresses thousands of times.
    return to_checksum_address(address)


def _topic_address(topic: str) -> str:
    return _checksum("0x" + topic[-40:].lower())


def _direction(wallet: str, sender: str, receiver: str) -> tuple[Direction, str]:
    if sender == wallet and receiver == wallet:
        return "self", wallet
    if receiver == wallet:
        return "in", sender
    return "out", receiver


def _word(data: str, index: int) -> int:
    """The index-th 32-byte word of 0x-hex ABI data (no bounds beyond what the data holds)."""
    start = 2 + 64 * index
    chunk = data[start : start + 64]
    if len(chunk) != 64:
        raise ValueError("short ABI data")
    return int(chunk, 16)


def classify_logs(wallet: str, logs: list[dict[str, Any]]) -> tuple[list[Transfer], list[Interaction]]:
    """Tell ERC-20 from ERC-721 by topic count, 1155 by its events; the rest are interactions.

    A transfer counts only when its decoded `from` or `to` is the wallet (the topic filters also
    match a token id or an operator equal to it); an ERC-1155 operator that is neither party made
    an interaction, not a transfer."""
    transfers: list[Transfer] = []
    interactions: list[Interaction] = []
    seen: set[tuple[str, int]] = set()
    for log in logs:
        identity = (log["transactionHash"], int(log["logIndex"], 16))
        if identity in seen:
            continue
        seen.add(identity)
        topics = log["topics"]
        contract = _checksum(log["address"])
        block_number = int(log["blockNumber"], 16)
        tx_hash = log["transactionHash"]
        data: str = log.get("data") or "0x"
        topic0 = topics[0] if topics else ""
        try:
            if topic0 == TRANSFER_TOPIC and len(topics) in (3, 4):
                sender, receiver = _topic_address(topics[1]), _topic_address(topics[2])
                if wallet not in (sender, receiver):
                    # Matched on another topic: an ERC-721 token id equal to uint160(wallet) is
                    # someone else's transfer, not this wallet's history.
                    continue
                direction, counterparty = _direction(wallet, sender, receiver)
                if len(topics) == 3:
                    amount = _word(data, 0) if len(data) > 2 else 0
                    transfers.append(
                        Transfer(
                            "erc20", direction, contract, counterparty, block_number, None, amount, tx_hash, identity[1]
                        )
                    )
                else:
                    token_id = int(topics[3], 16)
                    transfers.append(
                        Transfer(
                            "erc721", direction, contract, counterparty, block_number, token_id, 1, tx_hash, identity[1]
                        )
                    )
                continue
            if topic0 in (TRANSFER_SINGLE_TOPIC, TRANSFER_BATCH_TOPIC) and len(topics) == 4:
                operator, sender, receiver = (_topic_address(topic) for topic in topics[1:4])
                if wallet not in (sender, receiver):
                    if operator == wallet:  # it relayed others' tokens: a call into the contract, counted apart
                        interactions.append(Interaction(contract, topic0, block_number, tx_hash))
                    continue
                direction, counterparty = _direction(wallet, sender, receiver)
                if topic0 == TRANSFER_SINGLE_TOPIC:
                    pairs = [(_word(data, 0), _word(data, 1))]
                else:
                    ids, amounts = abi_decode(["uint256[]", "uint256[]"], bytes.fromhex(data[2:]))
                    pairs = list(zip(ids, amounts, strict=False))
                for token_id, amount in pairs:
                    transfers.append(
                        Transfer(
                            "erc1155",
                            direction,
                            contract,
                            counterparty,
                            block_number,
                            token_id,
                            amount,
                            tx_hash,
                            identity[1],
                        )
                    )
                continue
        except Exception:  # noqa: BLE001, S110 - a malformed log from a hostile contract is not a transfer
            pass
        interactions.append(Interaction(contract, topic0, block_number, tx_hash))
    return transfers, interactions


class LogScanner:
    """Scans eth_getLogs in block windows that adapt to what the provider accepts.

    Workers (at most `concurrency` requests in flight) take the next window from a shared
    cursor, so a window learned from one refusal applies to every range not yet sent. A
    refusal that names a block cap ("max range 2000", Alchemy's "[0x.., 0x..] should
    work") becomes a ceiling the window never grows past; one that blames the result count
    only shrinks the window, which grows back while answers come in.
    """

    def __init__(self, rpc: JsonRpc, *, window: int = 10_000, concurrency: int = 4) -> None:
        self.rpc = rpc
        self.window = max(1, window)
        self.ceiling = self.window
        self.concurrency = max(1, concurrency)
        self.refusals = 0  # ranges the provider refused (each one is re-sent split)

    async def _fetch(self, start: int, end: int, topic_filters: list[list[str | None]]) -> list[dict[str, Any]]:
        calls = [
            ("eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end), "topics": topics}])
            for topics in topic_filters
        ]
        results = await self.rpc.batch(calls)
        return [log for result in results for log in (result or [])]

    def _shrink(self, exc: RpcCallError, size: int) -> int:
        hint = exc.suggested_window()
        smaller = hint if hint is not None and hint < size else max(1, size // 2)
        if not exc.is_result_limit:
            self.ceiling = min(self.ceiling, smaller)
        self.window = max(1, min(self.window, smaller))
        return smaller

    async def scan(self, start: int, end: int, topic_filters: list[list[str | None]]) -> list[dict[str, Any]]:
        if end < start:
            return []
        cursor = start
        retry: list[tuple[int, int]] = []  # refused ranges, already split
        found: list[dict[str, Any]] = []
        streak = 0

        def next_range() -> tuple[int, int] | None:
            nonlocal cursor
            if retry:
                return retry.pop()
            if cursor > end:
                return None
            low, high = cursor, min(end, cursor + self.window - 1)
            cursor = high + 1
            return low, high

        # Idle workers wait while others are in flight: a refusal may hand them split ranges.
        changed = asyncio.Condition()
        in_flight = 0

        async def take() -> tuple[int, int] | None:
            nonlocal in_flight
            async with changed:
                while (span := next_range()) is None:
                    if in_flight == 0:
                        changed.notify_all()
                        return None
                    await changed.wait()
                in_flight += 1
                return span

        async def done() -> None:
            nonlocal in_flight
            async with changed:
                in_flight -= 1
                changed.notify_all()

        async def worker() -> None:
            nonlocal streak
            while (span := await take()) is not None:
                low, high = span
                try:
                    logs = await self._fetch(low, high, topic_filters)
                except RpcCallError as exc:
                    if not exc.is_range_limit:
                        raise
                    if low == high:
                        raise HistoryError(f"provider refuses eth_getLogs even for block {low}: {exc}") from exc
                    self.refusals += 1
                    streak = 0
                    # Split by the narrowest window learned so far, not just this range's half.
                    step = min(self._shrink(exc, high - low + 1), self.window)
                    starts = range(low, high + 1, step)
                    retry.extend((a, min(high, a + step - 1)) for a in reversed(starts))
                    continue
                finally:
                    await done()
                found.extend(logs)
                streak += 1
                # Result-count refusals depend on density: try wider windows again after a calm run.
                if streak >= 2 * self.concurrency and self.window < self.ceiling:
                    self.window = min(self.ceiling, self.window * 2)
                    streak = 0

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.concurrency):
                    group.create_task(worker())
        except BaseExceptionGroup as group_error:
            # Callers handle HistoryError (and its RpcCallError); hand them the first failure itself.
            raise group_error.exceptions[0] from None
        return found


def wallet_topic_filters(wallet: str) -> list[list[str | None]]:
    """The wallet as any indexed argument: transfers (from/to), 1155 operator/from/to, protocol events."""
    topic = address_topic(wallet)
    return [[None, topic], [None, None, topic], [None, None, None, topic]]


async def _state_active(rpc: JsonRpc, wallet: str, blocks: list[int], *, by_code: bool) -> list[bool] | None:
    """Per block: has the account any footprint yet (nonce or balance, or code for a contract)?

    None when the node has no state that far back (pruned), so the caller falls back to logs.
    """
    calls: list[tuple[str, list[Any]]] = []
    for number in blocks:
        tag = hex(number)
        if by_code:
            calls.append(("eth_getCode", [wallet, tag]))
        else:
            calls += [("eth_getTransactionCount", [wallet, tag]), ("eth_getBalance", [wallet, tag])]
    try:
        answers = await rpc.batch(calls)
    except (RpcCallError, HistoryError):
        return None
    if by_code:
        return [answer not in EMPTY_CODE for answer in answers]
    flags = []
    for nonce, balance in zip(answers[0::2], answers[1::2], strict=True):
        if not isinstance(nonce, str) or not isinstance(balance, str):
            return None
        flags.append(int(nonce, 16) > 0 or int(balance, 16) > 0)
    return flags


async def first_activity_from_state(
    rpc: JsonRpc, wallet: str, low: int, high: int, *, by_code: bool = False, fanout: int = 8
) -> int | None:
    """The first block in [low, high] where the account has a footprint; high must have one.

    A k-ary search: each round asks `fanout` blocks in one batch, so 2M blocks take ~7
    round trips. For an EOA the footprint (nonce > 0 or balance > 0) cannot vanish before
    its first transaction and the nonce never falls, so the predicate is monotonic; for a
    contract it is "has code". None when the node keeps no state at some probed block.
    """
    at_low = await _state_active(rpc, wallet, [low], by_code=by_code)
    if at_low is None:
        return None
    if at_low[0]:
        return low
    # Invariant: inactive at low, active at high.
    while high - low > 1:
        step = (high - low) / (fanout + 1)
        probes = sorted({low + max(1, round(step * (i + 1))) for i in range(fanout)} - {high})
        probes = [p for p in probes if low < p < high]
        if not probes:
            break
        flags = await _state_active(rpc, wallet, probes, by_code=by_code)
        if flags is None:
            return None
        for probe, active in zip(probes, flags, strict=True):
            if active:
                high = probe
                break
            low = probe
    return high


async def fetch_history(
    rpc: JsonRpc,
    address: str,
    *,
    block: int | None = None,
    chain_id: int | None = None,
    max_depth: int = 2_000_000,
    window: int = 10_000,
    concurrency: int = 4,
    deployed_scan_limit: int | None = None,
    search_first_activity: bool = True,
    traces: TraceMode = "auto",
) -> WalletHistory:
    """Read balance, nonce, code, transfers, interactions, deployments and age at one block."""
    wallet = to_checksum_address(address)
    if block is None or chain_id is None:
        head, chain_id_hex = await rpc.batch([("eth_blockNumber", []), ("eth_chainId", [])])
        block = int(head, 16) if block is None else block
        chain_id = int(chain_id_hex, 16)
    state = await read_account_state(
        rpc,
        wallet,
        block=block,
        max_depth=max_depth,
        deployed_scan_limit=deployed_scan_limit,
        search_first_activity=search_first_activity,
        traces=traces,
    )
    filters = wallet_topic_filters(wallet)
    logs = await LogScanner(rpc, window=window, concurrency=concurrency).scan(state.from_block, block, filters)
    logs.sort(key=lambda entry: (int(entry["blockNumber"], 16), int(entry["logIndex"], 16)))
    transfers, interactions = classify_logs(wallet, logs)
    return state.with_activity(chain_id, transfers, interactions)


@dataclass(frozen=True)
class AccountState:
    """Balance, nonce, code, deployments and state-derived age of one account at one block."""

    address: str
    block_number: int
    from_block: int
    balance_wei: int
    nonce: int
    is_contract: bool
    deployed_contracts: tuple[str, ...]
    first_state_block: int | None
    deployments_source: str = ""

    @property
    def has_footprint(self) -> bool:
        """A nonce, a balance or code: the account exists on chain."""
        return self.is_contract or self.nonce > 0 or self.balance_wei > 0

    def with_activity(
        self, chain_id: int, transfers: list[Transfer], interactions: list[Interaction], *, source: str = "rpc"
    ) -> WalletHistory:
        """Combine with the wallet's logs: the first activity is the earlier of state and logs."""
        blocks = [t.block_number for t in transfers] + [i.block_number for i in interactions]
        first_log = min(blocks) if blocks else None
        first: int | None
        origin: FirstActivitySource
        if self.first_state_block is not None and (first_log is None or self.first_state_block <= first_log):
            first, origin = self.first_state_block, "state"
        elif first_log is not None:
            first, origin = first_log, "logs"
        else:
            first, origin = None, "none"
        return WalletHistory(
            chain_id=chain_id,
            address=self.address,
            block_number=self.block_number,
            from_block=self.from_block,
            balance_wei=self.balance_wei,
            nonce=self.nonce,
            is_contract=self.is_contract,
            transfers=tuple(transfers),
            interactions=tuple(interactions),
            deployed_contracts=self.deployed_contracts,
            first_activity_block=first,
            first_activity_source=origin,
            source=source,
            deployments_source=self.deployments_source,
        )


async def read_account_state(
    rpc: JsonRpc,
    wallet: str,
    *,
    block: int,
    max_depth: int,
    deployed_scan_limit: int | None = None,
    search_first_activity: bool = True,
    traces: TraceMode = "auto",
    since: AccountState | None = None,
) -> AccountState:
    """Balance, nonce and code at `block`; deployments (CREATE at every nonce, factory ones in the
    blocks [from_block, block] where the node offers traces); the first block with a footprint.

    `since`: the account as read at an earlier block, whose deployments and age are known: only
    the nonces and blocks after it are looked at (the read window stays its `from_block`)."""
    tag = hex(block)
    balance, nonce, code = await rpc.batch(
        [
            ("eth_getBalance", [wallet, tag]),
            ("eth_getTransactionCount", [wallet, tag]),
            ("eth_getCode", [wallet, tag]),
        ]
    )
    if not isinstance(balance, str) or not isinstance(nonce, str):
        raise HistoryError("eth_getBalance/eth_getTransactionCount returned no value")
    from_block = max(0, block - max_depth + 1) if since is None else since.from_block
    nonce_value, balance_value = int(nonce, 16), int(balance, 16)
    is_contract = code not in EMPTY_CODE

    scanned = nonce_value if deployed_scan_limit is None else min(nonce_value, deployed_scan_limit)
    deployed: tuple[str, ...] = ()
    deployments_source = ""
    if since is None or nonce_value > since.nonce:  # a wallet that sent nothing since deployed nothing
        scan = await find_deployments(
            rpc,
            wallet,
            nonce_from=0 if since is None else since.nonce,
            nonce_to=scanned,
            from_block=from_block if since is None else since.block_number + 1,
            to_block=block,
            tag=tag,
            # A wallet that never sent a transaction deployed nothing: no trace probe for it.
            traces=traces if nonce_value > 0 else "off",
        )
        deployed, deployments_source = scan.contracts, scan.source

    first_state: int | None = None
    has_footprint = is_contract or nonce_value > 0 or balance_value > 0
    # An account's footprint never goes away: one already there at `since` was searched for then.
    if search_first_activity and has_footprint and (since is None or not since.has_footprint):
        low = from_block if since is None else since.block_number
        first_state = await first_activity_from_state(rpc, wallet, low, block, by_code=is_contract)
    return AccountState(
        address=wallet,
        block_number=block,
        from_block=from_block,
        balance_wei=balance_value,
        nonce=nonce_value,
        is_contract=is_contract,
        deployed_contracts=deployed,
        first_state_block=first_state,
        deployments_source=deployments_source,
    )


class HistorySource(Protocol):
    """Where wallet histories come from: plain JSON-RPC, or an indexer behind the same shape."""

    name: str

    async def chain_id(self) -> int: ...

    async def head(self) -> int: ...

    async def fetch(self, address: str, *, block: int) -> WalletHistory: ...

    def cache_tag(self) -> str:
        """What, besides (chain, address, block), decides the answer: goes into cache keys."""
        ...


class JsonRpcSourceBase:
    """What every JSON-RPC-backed history source shares: chain id (asked once), head, cache tag."""

    name: str
    rpc: JsonRpc
    max_depth: int
    _chain_id: int | None

    async def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(await self.rpc.call("eth_chainId"), 16)
        return self._chain_id

    async def head(self) -> int:
        return int(await self.rpc.call("eth_blockNumber"), 16)

    def cache_tag(self) -> str:
        return f"{self.name}:d{self.max_depth}"


class RpcHistorySource(JsonRpcSourceBase):
    """Histories over any EVM JSON-RPC endpoint (eth_getLogs in adaptive windows)."""

    name = "rpc"

    def __init__(
        self,
        rpc: JsonRpc,
        *,
        max_depth: int = 2_000_000,
        window: int = 10_000,
        concurrency: int = 4,
        deployed_scan_limit: int | None = None,
        search_first_activity: bool = True,
        traces: TraceMode = "auto",
    ) -> None:
        self.rpc = rpc
        self.max_depth = max_depth
        self.window = window
        self.concurrency = concurrency
        self.deployed_scan_limit = deployed_scan_limit
        self.search_first_activity = search_first_activity
        self.traces: TraceMode = traces
        self._chain_id: int | None = None

    def cache_tag(self) -> str:
        # Traces find factory deployments a CREATE scan cannot: another answer, another key.
        return f"{super().cache_tag()}:t{self.traces}"

    async def fetch(self, address: str, *, block: int, from_block: int | None = None) -> WalletHistory:
        """The history at `block`, read from `from_block` (default: `max_depth` blocks back)."""
        depth = self.max_depth if from_block is None else block - from_block + 1
        return await fetch_history(
            self.rpc,
            address,
            block=block,
            chain_id=await self.chain_id(),
            max_depth=depth,
            window=self.window,
            concurrency=self.concurrency,
            deployed_scan_limit=self.deployed_scan_limit,
            search_first_activity=self.search_first_activity,
            traces=self.traces,
        )
