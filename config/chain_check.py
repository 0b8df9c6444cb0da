"""Start-up and running checks against the chain: right chain id, no public dev key, a funded signer.

The signer-balance check is one rule with one threshold (`signer_balance_floor_wei`): the
minter's low-balance report, the on-call alert it feeds and the API's /ready all compare a
reading with it the same way (`BalanceReading.low`).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
from eth_account import Account
from eth_utils.address import to_checksum_address
from web3 import AsyncWeb3
from web3.exceptions import Web3Exception

from chain.dev_accounts import dev_accounts
from chain.errors import ChainError, ChainUnavailable
from chain.rpc import JsonRpc
from chain.signers import RemoteSigner, Signer, load_signer
from chain.web3 import connect_web3
from config.collections import CollectionConfig, collections_by_chain
from config.settings import Settings
from webhooks.egress import EgressPolicy, egress_client
from webhooks.signing import signature_headers

__all__ = [
    "LOCAL_CHAIN_IDS",
    "BalanceReading",
    "BalanceSource",
    "BalanceWatch",
    "ChainIdMismatch",
    "PublicDevKey",
    "check_collection_chains",
    "configured_signer_address",
    "connect_rpc",
    "is_loopback_anvil",
    "read_signer_balance",
    "refuse_public_dev_key",
    "rpc_balance",
    "service_signer",
    "signer_balance_floor_wei",
    "web3_balance",
    "webhook_alert",
]

log = logging.getLogger("personamint.chain_check")

# anvil/hardhat (31337) and geth --dev (1337): chains where anvil's public keys are fine.
LOCAL_CHAIN_IDS = frozenset({31337, 1337})
# What a node read can raise: web3's errors, chain.rpc's ChainErrors (it carries web3 here), httpx's.
_NODE_ERRORS = (Web3Exception, ChainError, httpx.HTTPError, OSError, TimeoutError, ValueError)


class ChainIdMismatch(ChainError):
    """An RPC endpoint serves another chain than the configuration says; the service must not start."""

    code: ClassVar[str] = "chain_id_mismatch"

    def __init__(self, *, rpc: str, actual: int, expected: int, where: str = "") -> None:
        context = f" for {where}" if where else ""
        super().__init__(f"RPC {rpc}{context} serves chain {actual}, but chain {expected} is configured")
        self.rpc = rpc
        self.actual = actual
        self.expected = expected


class PublicDevKey(ChainError):
    """One of anvil's published dev keys is configured for a real chain: anyone can sign with it."""

    code: ClassVar[str] = "public_dev_key"


async def connect_rpc(
    rpc_urls: Sequence[str],
    *,
    expected_chain_id: int,
    labels: Sequence[str] | None = None,
    where: str = "",
    timeout_s: float = 10.0,
) -> tuple[str, AsyncWeb3[Any]]:
    """The first URL that answers, checked to serve `expected_chain_id`; later ones are fallbacks.

    A URL that answers with another chain id stops everything (ChainIdMismatch) rather
    than falling through: it means the configuration is wrong, not that a node is down.
    `labels` are what errors print (URLs as written, without expanded API keys).
    """
    if not rpc_urls:
        raise ChainUnavailable(f"no RPC URL configured{' for ' + where if where else ''}")
    shown = list(labels) if labels is not None and len(labels) == len(rpc_urls) else [_redact(u) for u in rpc_urls]
    problems: list[str] = []
    for url, label in zip(rpc_urls, shown, strict=True):
        # One try per URL: the next URL is the retry, and a backoff (about 4 s per dead
        # URL) would only delay the fallback.
        w3: AsyncWeb3[Any] = connect_web3(url, timeout_s=timeout_s, retries=0)
        try:
            chain_id = await asyncio.wait_for(w3.eth.chain_id, timeout_s)
        except _NODE_ERRORS as exc:
            problems.append(f"{label}: {type(exc).__name__}")
            log.warning("RPC %s unreachable: %s", label, type(exc).__name__)
            await _disconnect(w3)
            continue
        if chain_id != expected_chain_id:
            await _disconnect(w3)
            raise ChainIdMismatch(rpc=label, actual=chain_id, expected=expected_chain_id, where=where)
        return url, w3
    raise ChainUnavailable(f"no RPC answered{' for ' + where if where else ''}: {'; '.join(problems)}")


async def check_collection_chains(
    collections: Mapping[str, CollectionConfig],
    *,
    default_rpc_url: str | None,
    chain_rpc_urls: Mapping[int, str] | None = None,
    chain_ids: set[int] | None = None,
    refuse_unreachable: bool = True,
) -> dict[int, str]:
    """At start-up: every chain a collection names is reachable and is that chain.

    Collections without `rpc_urls` use `chain_rpc_urls[chain id]` (PERSONAMINT_CHAINS) when
    there is one, else the service's `default_rpc_url`. `chain_ids`: check only these chains
    (a minter checks its own). Returns the RPC URL chosen per chain id (one minter, signer and
    nonce space per chain). With `refuse_unreachable` False a chain no URL answers is only
    logged (a pipeline worker serves the other chains; its jobs on that one retry), while a URL
    serving another chain still stops everything.
    """
    chosen: dict[int, str] = {}
    extra = chain_rpc_urls or {}
    for chain_id, group in sorted(collections_by_chain(collections).items()):
        if chain_ids is not None and chain_id not in chain_ids:
            continue
        for config in group:
            assert config.chain is not None
            if config.chain.rpc_urls:
                urls, labels = list(config.chain.rpc_urls), list(config.chain.rpc_url_labels)
            elif chain_id in extra:
                urls, labels = [extra[chain_id]], [f"PERSONAMINT_CHAINS[{chain_id}]"]
            else:
                urls, labels = ([default_rpc_url] if default_rpc_url else []), ["PERSONAMINT_RPC_URL"]
            try:
                url, w3 = await connect_rpc(
                    urls, expected_chain_id=chain_id, labels=labels, where=f"collection {config.id} ({config.path})"
                )
            except ChainIdMismatch:
                raise
            except ChainUnavailable as exc:
                if refuse_unreachable:
                    raise
                log.warning("starting without chain %d for now: %s", chain_id, exc)
                continue
            await _disconnect(w3)
            chosen.setdefault(chain_id, url)
    return chosen


async def is_loopback_anvil(rpc: JsonRpc) -> bool:
    """Whether `rpc` is an anvil on this machine (loopback URL, client `anvil/…`): a dev chain whatever
    its id, as local mode starts one per chain its collections name."""
    host = (urlsplit(rpc.url).hostname or "").strip("[]")
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        return False
    try:
        version = await rpc.call("web3_clientVersion")
    except ChainError:
        return False
    return isinstance(version, str) and version.lower().startswith("anvil/")


def refuse_public_dev_key(address: str, chain_id: int, *, role: str = "signer", dev_chain: bool = False) -> None:
    """Raise PublicDevKey when `address` is an anvil dev account and the chain is not a local one
    (`dev_chain`: the caller found it is an anvil on loopback)."""
    if chain_id in LOCAL_CHAIN_IDS or dev_chain:
        return
    published = {account.address.lower() for account in dev_accounts(20)}
    if address.lower() in published:
        raise PublicDevKey(
            f"the {role} {address} is one of anvil's published dev keys; on chain {chain_id} anyone can sign with it"
        )


async def service_signer(settings: Settings, *, chain_id: int, dev_chain: bool = False) -> Signer:
    """The service's hot signer from settings, checked for the chain it will sign on.

    Exactly one source (keystore, remote signer, or a raw key in local mode); a remote
    signer must answer and hold the address; anvil's public keys only on local chains.
    """
    secret = settings.signer_keystore_password
    auth = settings.remote_signer_auth
    # Decrypting a keystore runs scrypt for about a second: off the event loop.
    signer = await asyncio.to_thread(
        load_signer,
        env=settings.env,
        raw_key=settings.signer_key.get_secret_value() if settings.signer_key else None,
        keystore_path=settings.signer_keystore,
        password=secret.get_secret_value() if secret else None,
        password_file=settings.signer_keystore_password_file,
        remote_url=settings.remote_signer_url,
        remote_address=settings.remote_signer_address,
        remote_headers={"Authorization": auth.get_secret_value()} if auth else None,
    )
    if isinstance(signer, RemoteSigner):
        await signer.check()
    refuse_public_dev_key(signer.address, chain_id, dev_chain=dev_chain)
    return signer


async def configured_signer_address(settings: Settings) -> str | None:
    """The address the configured signer signs for, whichever kind it is (None: no signer configured).

    A keystore declares its address in the clear (read without decrypting); one that does not is
    decrypted once, off the event loop. A remote signer's is `remote_signer_address`; a raw key's
    is derived. Readers that only watch the balance (the API's /ready) need nothing more.
    """
    if settings.remote_signer_url is not None:
        return settings.remote_signer_address
    if settings.signer_key is not None:
        return str(Account.from_key(settings.signer_key.get_secret_value()).address)
    if settings.signer_keystore is not None:
        with contextlib.suppress(OSError, ValueError):
            declared = str(json.loads(settings.signer_keystore.read_text()).get("address") or "")
            if declared:
                return str(to_checksum_address("0x" + declared.lower().removeprefix("0x")))
        secret = settings.signer_keystore_password
        signer = await asyncio.to_thread(
            load_signer,
            env=settings.env,
            keystore_path=settings.signer_keystore,
            password=secret.get_secret_value() if secret else None,
            password_file=settings.signer_keystore_password_file,
        )
        return signer.address
    return None


def signer_balance_floor_wei(settings: Settings) -> int:
    """The one signer-balance threshold: below it the balance is low, wherever it is read."""
    return settings.min_signer_balance_wei


BalanceSource = Callable[[str], Awaitable[int]]
"""Reads an address's balance in wei at the latest block."""


def rpc_balance(call: Callable[[str, Sequence[Any]], Awaitable[Any]]) -> BalanceSource:
    """A balance source over any JSON-RPC client's `call(method, params)`."""

    async def read(address: str) -> int:
        return int(await call("eth_getBalance", [address, "latest"]), 16)

    return read


def web3_balance(w3: AsyncWeb3[Any]) -> BalanceSource:
    """A balance source over web3."""

    async def read(address: str) -> int:
        return int(await w3.eth.get_balance(address))  # type: ignore[arg-type]

    return read


@dataclass(frozen=True)
class BalanceReading:
    """One look at the signer's balance against the low-balance threshold."""

    address: str
    chain_id: int | None  # None where the reader does not know its chain (the API's /ready)
    balance_wei: int
    threshold_wei: int
    checked_at: float

    @property
    def low(self) -> bool:
        return self.balance_wei < self.threshold_wei

    def as_health(self) -> dict[str, Any]:
        """The detail a /health endpoint shows (wei as strings: JSON numbers lose precision)."""
        return {
            "signer": self.address,
            "chain_id": self.chain_id,
            "balance_wei": str(self.balance_wei),
            "threshold_wei": str(self.threshold_wei),
            "status": "low" if self.low else "ok",
            "checked_at": int(self.checked_at),
        }


async def read_signer_balance(
    read_balance: BalanceSource,
    address: str,
    *,
    threshold_wei: int,
    chain_id: int | None = None,
    clock: Callable[[], float] = time.time,
) -> BalanceReading:
    """The signer-balance check: the balance now, against `threshold_wei`."""
    return BalanceReading(address, chain_id, await read_balance(address), threshold_wei, clock())


AlertHook = Callable[[BalanceReading], Awaitable[None]]


class BalanceWatch:
    """Watches one signer's balance; alerts through `on_low` when it falls under the threshold.

    Readings come from `check` (reads the balance now) or `observe` (a balance someone else
    read: the minter process feeds its own readings, so there is one poller per signer). The
    alert fires when the balance first goes low and again every `realert_s` while it stays
    low; a failing hook is logged, never raised, so an alert cannot stop minting.
    """

    def __init__(
        self,
        read_balance: BalanceSource,
        address: str,
        *,
        chain_id: int,
        threshold_wei: int,
        on_low: AlertHook | None = None,
        realert_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if threshold_wei < 0:
            raise ValueError("threshold_wei must be >= 0")
        self._read_balance = read_balance
        self.address = address
        self.chain_id = chain_id
        self.threshold_wei = threshold_wei
        self._on_low = on_low
        self._realert_s = realert_s
        self._clock = clock
        self._latest: BalanceReading | None = None
        self._alerted_at: float | None = None
        self.alerts_sent = 0

    @property
    def latest(self) -> BalanceReading | None:
        return self._latest

    async def check(self) -> BalanceReading:
        """Read the balance now, record it, and alert if it is low."""
        return await self.observe(await self._read_balance(self.address))

    async def observe(self, balance_wei: int) -> BalanceReading:
        """Record a balance read elsewhere, and alert if it is low."""
        reading = BalanceReading(self.address, self.chain_id, balance_wei, self.threshold_wei, self._clock())
        self._latest = reading
        if not reading.low:
            if self._alerted_at is not None:
                log.info("signer %s balance recovered: %d wei", self.address, balance_wei)
            self._alerted_at = None
            return reading
        due = self._alerted_at is None or reading.checked_at - self._alerted_at >= self._realert_s
        if due:
            log.warning("signer %s balance low: %d wei < %d wei", self.address, balance_wei, self.threshold_wei)
            self._alerted_at = reading.checked_at
            if self._on_low is not None:
                try:
                    await self._on_low(reading)
                    self.alerts_sent += 1
                except Exception as exc:  # noqa: BLE001 - an alert must never stop the minter
                    log.error("low-balance alert hook failed: %s", type(exc).__name__)
        return reading

    def health(self) -> dict[str, Any]:
        """Health detail: the latest reading, or `unknown` before the first check."""
        if self._latest is None:
            return {"signer": self.address, "chain_id": self.chain_id, "status": "unknown"}
        return self._latest.as_health()

    def metrics(self) -> str:
        """Prometheus text exposition of the latest reading (empty before the first check)."""
        if self._latest is None:
            return ""
        labels = f'chain_id="{self.chain_id}",address="{self.address}"'
        return (
            "# TYPE personamint_signer_balance_wei gauge\n"
            f"personamint_signer_balance_wei{{{labels}}} {self._latest.balance_wei}\n"
            "# TYPE personamint_signer_balance_low gauge\n"
            f"personamint_signer_balance_low{{{labels}}} {int(self._latest.low)}\n"
        )


def webhook_alert(
    url: str,
    *,
    secret: str,
    client: httpx.AsyncClient | None = None,
    timeout_s: float = 5.0,
    allow_loopback: bool = False,
) -> AlertHook:
    """An alert hook that POSTs the reading as JSON, signed like every outbound webhook.

    `X-PersonaMint-Timestamp` and `X-PersonaMint-Signature: v1=<hex HMAC-SHA256 of "<t>.<body>">`
    (`webhooks.signing`): the receiver checks it exactly as it checks status webhooks. The URL
    passes the egress policy now (`webhooks.egress`, EgressRefused) and again at each send,
    after DNS resolution, through the pinned egress client.
    """
    if not secret:
        raise ValueError("a webhook needs a signing secret")
    policy = EgressPolicy(allow_loopback=allow_loopback)
    policy.check_url(url)

    async def send(reading: BalanceReading) -> None:
        body = json.dumps(
            {"type": "signer.balance_low", "data": reading.as_health()}, separators=(",", ":"), sort_keys=True
        ).encode()
        headers = {"Content-Type": "application/json", **signature_headers(secret, body)}
        if client is not None:
            response = await client.post(url, content=body, headers=headers, timeout=timeout_s)
        else:
            async with egress_client(policy, timeout_s=timeout_s) as own:
                response = await own.post(url, content=body, headers=headers, timeout=timeout_s)
        response.raise_for_status()

    return send


def _redact(url: str) -> str:
    """scheme://host only: paths and queries of RPC URLs often carry API keys."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
    return f"{scheme}://{host}"


async def _disconnect(w3: AsyncWeb3[Any]) -> None:
    with contextlib.suppress(*_NODE_ERRORS):
        await w3.provider.disconnect()


async def refuse_wrong_chains(
    settings: Settings, *, chain_ids: set[int] | None = None, refuse_unreachable: bool = True
) -> None:
    """Start-up check: every collection's RPC (of `chain_ids` only, when given) answers with its chain id."""
    from config.collections import load_collection_configs

    try:
        await check_collection_chains(
            load_collection_configs(settings.collections_dir),
            default_rpc_url=settings.rpc_url,
            chain_rpc_urls={chain_id: endpoint.rpc_url for chain_id, endpoint in settings.chains.items()},
            chain_ids=chain_ids,
            refuse_unreachable=refuse_unreachable,
        )
    except ChainError as exc:
        raise SystemExit(f"refusing to start: {exc}") from None
