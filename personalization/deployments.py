"""The contracts a wallet deployed: plain CREATE by nonce, and factory / CREATE2 deployments from traces.

Plain CREATE lands at an address fixed by (wallet, nonce), so `eth_getCode` over the
CREATE addresses of nonces [nonce_from, nonce_to) finds those on any node: 50 calls per
batch, so a wallet with nonce 10,000 costs 200 requests.

A contract another contract created inside the wallet's transaction (a factory's CREATE,
any CREATE2, a constructor that deploys more) has an address no nonce predicts; only
traces show it. `traces="auto"` uses, once detected per JsonRpc client:
- `trace_filter` (Erigon, Reth, Nethermind, anvil): the wallet's top-level traces over
  the block range (windows shrink to the provider's block cap, many windows per batch,
  pages of `count`), then `trace_transaction` for those with subtraces (a plain transfer
  has none), 10 per batch;
- else `debug_traceTransaction` with the callTracer (geth): the node cannot list a
  wallet's transactions, so the blocks holding them are found by a search over the
  wallet's historical nonce (archive state needed), those blocks read in full, and each
  transaction traced; without that state only the CREATE scan runs.
A deployment counts only while its code exists at `tag`: a contract that self-destructed
(or whose creation reverted) is not counted, the same rule the nonce scan cannot avoid.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import rlp
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.errors import RpcError
from chain.rpc import JsonRpc, RpcCallError
from personalization.errors import HistoryError

TraceMode = Literal["auto", "trace_filter", "debug", "off"]
TraceMethod = Literal["trace_filter", "debug_traceTransaction"]

EMPTY_CODE = (None, "0x", "0x0")
ZERO_HASH = "0x" + "00" * 32

# eth_getCode calls per batch: a wallet with nonce 10,000 costs 200 requests (providers cap
# batches at 100 to 1,000 calls).
DEPLOYMENT_BATCH = 50
BATCHES_IN_FLIGHT = 4
TRACE_FILTER_PAGE = 500  # traces per trace_filter answer (`count`); a full page asks for the next
TRACE_FILTER_BATCH = 20  # block windows per request once the provider's cap is learned
TRACE_BATCH = 10  # trace_transaction / debug_traceTransaction calls per request (answers are large)
BLOCK_BATCH = 10  # full blocks per request (debug mode)
NONCE_BATCH = 50  # historical eth_getTransactionCount calls per request (debug mode)

# A node without the method: -32601, or providers' own words for a method they do not serve.
_UNSUPPORTED_CODES = frozenset({-32601})
_UNSUPPORTED_HINTS = (
    "method not found",
    "not supported",
    "unsupported",
    "not available",
    "does not exist",
    "not enabled",
    "disabled",
    "not allowed",
    "not whitelisted",
)
_RANGE_HINTS = ("range", "too many blocks", "block limit", "exceed")
# anvil: "block range too large, currently limited to 300"
_LIMITED_TO = re.compile(r"limit(?:ed)?\s+(?:to|of|is)\s*:?\s*(\d[\d,]*)")


@dataclass(frozen=True)
class DeploymentScan:
    """What one scan found: plain CREATE deployments by nonce, and the ones traces showed."""

    create: tuple[str, ...]
    """Contracts the wallet CREATEd at nonces [nonce_from, nonce_to), with code at `tag`, by nonce."""
    factory: tuple[str, ...]
    """Contracts another contract created (CREATE or CREATE2) inside the wallet's transactions in the block range."""
    source: str
    """"create" (eth_getCode only), "trace_filter" or "debug_traceTransaction" (traces were read)."""
    requests: int = 0
    """JSON-RPC requests sent (a batch is one; retries not counted)."""

    @property
    def contracts(self) -> tuple[str, ...]:
        """Both kinds, each address once, sorted."""
        return tuple(sorted(set(self.create) | set(self.factory)))


class _TracesUnsupported(Exception):
    """The node does not serve the trace method in use (found while scanning)."""


def created_address(sender: str, nonce: int) -> str:
    """The address a CREATE from sender at nonce lands at."""
    raw = rlp.encode([bytes.fromhex(sender[2:]), nonce])
    return to_checksum_address(keccak(raw)[12:])


def is_unsupported(exc: RpcError) -> bool:
    """The node refused the method itself (it does not serve it), not the arguments."""
    if not isinstance(exc, RpcCallError):
        # An HTTP 4xx for one method: gateways answer unknown or blocked methods that way.
        return True
    if exc.rpc_code in _UNSUPPORTED_CODES:
        return True
    message = exc.rpc_message.lower()
    return any(hint in message for hint in _UNSUPPORTED_HINTS)


def _range_cap(exc: RpcCallError, size: int) -> int | None:
    """The block window to try after a refused trace_filter range, or None if it was no range refusal."""
    message = exc.rpc_message.lower()
    if not any(hint in message for hint in _RANGE_HINTS):
        return None
    hint: int | None = None
    if match := _LIMITED_TO.search(message):
        hint = int(match.group(1).replace(",", ""))
    else:
        hint = exc.suggested_window()
    if hint is not None and 0 < hint < size:
        return hint
    return max(1, size // 2)


class RequestMeter:
    """The JSON-RPC client with a count of the requests this scan sent."""

    def __init__(self, rpc: JsonRpc) -> None:
        self.rpc = rpc
        self.requests = 0

    async def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        self.requests += 1
        return await self.rpc.call(method, params)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        if not calls:
            return []
        self.requests += 1
        return await self.rpc.batch(calls)

    async def batch_settled(self, calls: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
        if not calls:
            return []
        self.requests += 1
        return await self.rpc.batch_settled(calls)


T = TypeVar("T")


async def _chunked(items: Sequence[T], size: int, send: Callable[[Sequence[T]], Awaitable[list[Any]]]) -> list[Any]:
    """`send` over chunks of `items`, BATCHES_IN_FLIGHT at a time; the answers in item order."""
    gate = asyncio.Semaphore(BATCHES_IN_FLIGHT)

    async def one(chunk: Sequence[T]) -> list[Any]:
        async with gate:
            return await send(chunk)

    chunks = [items[i : i + size] for i in range(0, len(items), size)]
    answers = await asyncio.gather(*(one(chunk) for chunk in chunks))
    return [answer for chunk_answers in answers for answer in chunk_answers]


async def _with_code(meter: RequestMeter, addresses: Sequence[str], tag: str) -> list[str]:
    """The addresses that hold code at `tag`, in the order given."""
    codes = await _chunked(
        addresses, DEPLOYMENT_BATCH, lambda chunk: meter.batch([("eth_getCode", [a, tag]) for a in chunk])
    )
    return [address for address, code in zip(addresses, codes, strict=True) if code not in EMPTY_CODE]


async def deployed_by_create(rpc: JsonRpc, wallet: str, nonce_from: int, nonce_to: int, tag: str) -> list[str]:
    """The contracts the wallet created with plain CREATE at nonces [nonce_from, nonce_to), code at `tag`."""
    meter = RequestMeter(rpc)
    return await _with_code(meter, [created_address(wallet, n) for n in range(nonce_from, nonce_to)], tag)


# ---- what the node offers ----------------------------------------------------------------

# Per client, what a probe found: method → served. Weak keys: a closed client's answers go with it.
_OFFERED: weakref.WeakKeyDictionary[JsonRpc, dict[str, bool]] = weakref.WeakKeyDictionary()


async def _offers(meter: RequestMeter, method: TraceMethod, block: int) -> bool:
    """Does the node serve `method`? Asked once per client with a call that finds nothing."""
    known = _OFFERED.setdefault(meter.rpc, {})
    if method in known:
        return known[method]
    if method == "trace_filter":
        probe: list[Any] = [{"fromBlock": hex(block), "toBlock": hex(block), "fromAddress": ["0x" + "00" * 20]}]
    else:
        probe = [ZERO_HASH, {"tracer": "callTracer"}]
    try:
        await meter.call(method, probe)
        served = True
    except RpcError as exc:
        # Any other refusal ("transaction not found", bad params) still proves the method is there.
        served = not is_unsupported(exc)
    known[method] = served
    return served


def _forget(rpc: JsonRpc, method: TraceMethod) -> None:
    _OFFERED.setdefault(rpc, {})[method] = False


# ---- trace_filter + trace_transaction -------------------------------------------------------


def _path(trace: dict[str, Any]) -> tuple[int, ...]:
    return tuple(int(step) for step in trace.get("traceAddress") or ())


async def _wallet_transactions_with_subcalls(
    meter: RequestMeter, wallet: str, from_block: int, to_block: int
) -> list[str]:
    """Hashes of the wallet's transactions in [from_block, to_block] whose top-level trace has subtraces."""
    wallet_lower = wallet.lower()
    pending: list[tuple[int, int, int]] = [(from_block, to_block, 0)]  # (start, end, after)
    seen: set[tuple[str, tuple[int, ...]]] = set()
    hashes: dict[str, None] = {}
    cap: int | None = None
    while pending:
        work, pending = pending, []
        size = 1 if cap is None else TRACE_FILTER_BATCH  # one probe-sized request until the cap is known

        def query(span: tuple[int, int, int]) -> tuple[str, list[Any]]:
            start, end, after = span
            return (
                "trace_filter",
                [
                    {
                        "fromBlock": hex(start),
                        "toBlock": hex(end),
                        "fromAddress": [wallet],
                        "after": after,
                        "count": TRACE_FILTER_PAGE,
                    }
                ],
            )

        answers = await _chunked(work, size, lambda chunk: meter.batch_settled([query(s) for s in chunk]))
        for (start, end, after), answer in zip(work, answers, strict=True):
            if isinstance(answer, RpcCallError):
                if is_unsupported(answer):
                    raise _TracesUnsupported(str(answer))
                smaller = _range_cap(answer, end - start + 1) if after == 0 else None
                if smaller is None or end == start:
                    raise HistoryError(f"trace_filter over blocks {start}..{end}: {answer}") from answer
                cap = smaller if cap is None else min(cap, smaller)
                pending += [(low, min(end, low + cap - 1), 0) for low in range(start, end + 1, cap)]
                continue
            traces = [t for t in answer or [] if isinstance(t, dict)]
            fresh = 0
            for trace in traces:
                identity = (str(trace.get("transactionHash")), _path(trace))
                if identity in seen:
                    continue
                seen.add(identity)
                fresh += 1
                action = trace.get("action") or {}
                if (
                    not identity[1]
                    and str(action.get("from", "")).lower() == wallet_lower
                    and int(trace.get("subtraces") or 0) > 0
                    and trace.get("type") in ("call", "create")
                ):
                    hashes[identity[0]] = None
            # A full page may have more behind it; a node that ignores `after` repeats itself (fresh == 0).
            if len(traces) >= TRACE_FILTER_PAGE and fresh:
                pending.append((start, end, after + len(traces)))
    return list(hashes)


def _created_in_parity_traces(wallet: str, traces: list[dict[str, Any]]) -> list[str]:
    """Addresses created by a contract in one transaction's traces, outside any reverted frame."""
    wallet_lower = wallet.lower()
    failed = {_path(t) for t in traces if t.get("error")}
    created: list[str] = []
    for trace in traces:
        path = _path(trace)
        if trace.get("type") != "create" or not path:  # the top-level CREATE is the nonce scan's
            continue
        if any(path[:depth] in failed for depth in range(len(path) + 1)):
            continue  # it, or a frame it ran in, reverted: the creation was undone
        result = trace.get("result") or {}
        creator = str((trace.get("action") or {}).get("from", "")).lower()
        if result.get("address") and creator != wallet_lower:
            created.append(to_checksum_address(result["address"]))
    return created


async def _factory_by_trace_filter(meter: RequestMeter, wallet: str, from_block: int, to_block: int) -> list[str]:
    hashes = await _wallet_transactions_with_subcalls(meter, wallet, from_block, to_block)
    try:
        answers = await _chunked(
            hashes, TRACE_BATCH, lambda chunk: meter.batch([("trace_transaction", [h]) for h in chunk])
        )
    except RpcError as exc:
        if is_unsupported(exc):
            raise _TracesUnsupported(str(exc)) from exc
        raise
    return [a for traces in answers for a in _created_in_parity_traces(wallet, list(traces or []))]


# ---- debug_traceTransaction ----------------------------------------------------------------


async def _nonces_at(meter: RequestMeter, wallet: str, blocks: Sequence[int]) -> list[int] | None:
    """The wallet's nonce at each block; None when the node keeps no state at one of them."""
    try:
        answers = await _chunked(
            blocks,
            NONCE_BATCH,
            lambda chunk: meter.batch([("eth_getTransactionCount", [wallet, hex(b)]) for b in chunk]),
        )
    except RpcCallError as exc:
        if exc.retryable:
            raise  # a rate limit says nothing about the state the node keeps
        return None
    if not all(isinstance(answer, str) for answer in answers):
        return None
    return [int(answer, 16) for answer in answers]


async def blocks_with_sends(meter: RequestMeter, wallet: str, from_block: int, to_block: int) -> list[int] | None:
    """The blocks in [from_block, to_block] holding the wallet's transactions: where its nonce rose.

    Every interval whose end nonce exceeds its start nonce is split each round (8 ways while
    few are open, in two once many are), so T transactions over R blocks cost about
    T·log2(R/T) historical eth_getTransactionCount calls, 50 per request. None when the
    node keeps no state that far back.
    """
    ends = [to_block] if from_block == 0 else [from_block - 1, to_block]
    nonces = await _nonces_at(meter, wallet, ends)
    if nonces is None:
        return None
    low_nonce = 0 if from_block == 0 else nonces[0]
    # (low block, nonce there, high block, nonce there): the wallet's sends lie in (low, high].
    open_spans = [(from_block - 1, low_nonce, to_block, nonces[-1])] if nonces[-1] > low_nonce else []
    found: list[int] = []
    while open_spans:
        ways = max(2, min(9, 128 // len(open_spans)))
        plans = []
        for low, low_n, high, high_n in open_spans:
            if high - low == 1:
                found.append(high)
                continue
            points = sorted({low + max(1, (high - low) * i // ways) for i in range(1, ways)} - {high})
            plans.append((low, low_n, high, high_n, [p for p in points if low < p < high]))
        probes = [p for plan in plans for p in plan[4]]
        answers = await _nonces_at(meter, wallet, probes) if probes else []
        if answers is None:
            return None
        at = dict(zip(probes, answers, strict=True))
        open_spans = []
        for low, low_n, high, high_n, points in plans:
            edges = [(low, low_n), *((p, at[p]) for p in points), (high, high_n)]
            for (a, a_n), (b, b_n) in itertools.pairwise(edges):
                if b_n > a_n:
                    open_spans.append((a, a_n, b, b_n))
    return sorted(found)


def _created_in_call_frames(wallet: str, frame: dict[str, Any], *, top: bool = True) -> list[str]:
    """Addresses created below the top frame of a callTracer result, outside any reverted frame."""
    if frame.get("error"):
        return []  # this frame reverted, and everything it created with it
    created: list[str] = []
    kind = str(frame.get("type", "")).upper()
    creator = str(frame.get("from", "")).lower()
    if not top and kind in ("CREATE", "CREATE2") and frame.get("to") and creator != wallet.lower():
        created.append(to_checksum_address(frame["to"]))
    for child in frame.get("calls") or ():
        if isinstance(child, dict):
            created += _created_in_call_frames(wallet, child, top=False)
    return created


async def _factory_by_debug(meter: RequestMeter, wallet: str, from_block: int, to_block: int) -> list[str] | None:
    """None when the node keeps no state to find the wallet's transactions by."""
    blocks = await blocks_with_sends(meter, wallet, from_block, to_block)
    if blocks is None:
        return None
    bodies = await _chunked(
        blocks, BLOCK_BATCH, lambda chunk: meter.batch([("eth_getBlockByNumber", [hex(b), True]) for b in chunk])
    )
    wallet_lower = wallet.lower()
    hashes = [
        tx["hash"]
        for body in bodies
        for tx in (body or {}).get("transactions") or ()
        if isinstance(tx, dict) and str(tx.get("from", "")).lower() == wallet_lower
    ]
    try:
        frames = await _chunked(
            hashes,
            TRACE_BATCH,
            lambda chunk: meter.batch([("debug_traceTransaction", [h, {"tracer": "callTracer"}]) for h in chunk]),
        )
    except RpcError as exc:
        if is_unsupported(exc):
            raise _TracesUnsupported(str(exc)) from exc
        raise
    return [a for frame in frames if isinstance(frame, dict) for a in _created_in_call_frames(wallet, frame)]


# ---- the scan --------------------------------------------------------------------------------


_METHODS: dict[TraceMode, tuple[TraceMethod, ...]] = {
    "auto": ("trace_filter", "debug_traceTransaction"),
    "trace_filter": ("trace_filter",),
    "debug": ("debug_traceTransaction",),
}


async def _factory(
    meter: RequestMeter, wallet: str, from_block: int, to_block: int, traces: TraceMode
) -> tuple[list[str], str]:
    """Factory / CREATE2 deployments in the block range and the method that found them ("create": none used)."""
    if traces == "off":
        return [], "create"
    methods = _METHODS[traces]
    probe_block = max(0, min(from_block, to_block))
    for method in methods:
        if not await _offers(meter, method, probe_block):
            continue
        try:
            if from_block > to_block:
                return [], method
            if method == "trace_filter":
                return await _factory_by_trace_filter(meter, wallet, from_block, to_block), method
            found = await _factory_by_debug(meter, wallet, from_block, to_block)
        except _TracesUnsupported:
            _forget(meter.rpc, method)
            continue
        if found is not None:
            return found, method
        if traces == "debug":
            raise HistoryError(
                f"debug_traceTransaction needs the wallet's historical nonce, and the node keeps no state "
                f"for blocks {from_block}..{to_block}"
            )
    if traces != "auto":
        raise HistoryError(f"the node does not serve {methods[0]} (traces={traces!r})")
    return [], "create"


async def find_deployments(
    rpc: JsonRpc,
    wallet: str,
    *,
    nonce_from: int,
    nonce_to: int,
    from_block: int,
    to_block: int,
    tag: str,
    traces: TraceMode = "auto",
) -> DeploymentScan:
    """The wallet's deployments: CREATE at nonces [nonce_from, nonce_to), factory ones in blocks [from_block, to_block].

    Correct on any sub-range, so a cached read extends with only the new nonces and blocks.
    Both kinds count only with code at `tag`. `traces`: "auto" detects (once per client)
    trace_filter, then debug_traceTransaction, and falls back to the CREATE scan alone;
    "trace_filter" or "debug" insist on that method (HistoryError if the node lacks it);
    "off" reads no traces.
    """
    checksummed = to_checksum_address(wallet)
    meter = RequestMeter(rpc)
    candidates = [created_address(checksummed, n) for n in range(max(0, nonce_from), nonce_to)]
    try:
        async with asyncio.TaskGroup() as group:
            creates = group.create_task(_with_code(meter, candidates, tag))
            traced = group.create_task(_factory(meter, checksummed, from_block, to_block, traces))
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None  # callers handle HistoryError, not groups
    created, (factory_candidates, source) = creates.result(), traced.result()
    unique = sorted(set(factory_candidates) - set(created))
    factory = await _with_code(meter, unique, tag) if unique else []
    return DeploymentScan(create=tuple(created), factory=tuple(factory), source=source, requests=meter.requests)
