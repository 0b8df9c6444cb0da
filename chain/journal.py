"""What the minter must remember across a crash: every signed transaction that is not yet confirmed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from chain.errors import ChainError
from chain.fees import Fees


class FenceLost(ChainError):
    """Another minter holds the signer's lease now: this one must not send anything more."""

    code: ClassVar[str] = "lease_lost"


@dataclass(frozen=True)
class JournalItem:
    """One mint riding in a transaction."""

    request_id: bytes
    recipient: str
    token_uri: str
    contract: str | None = None
    """The contract it mints in; None in records written before one minter served several."""


@dataclass(frozen=True)
class TxRecord:
    """One nonce's transaction: its mints and every version signed for it.

    Written before each version is broadcast, so a minter that dies between signing and
    sending finds the exact bytes on restart and rebroadcasts them instead of signing
    something new at that nonce (which could mint the same request twice).
    """

    nonce: int
    items: tuple[JournalItem, ...]
    raw: bytes
    hashes: tuple[str, ...]
    gas: int
    fees: Fees
    signed_at: float

    def to_json(self) -> str:
        return json.dumps(
            {
                "nonce": self.nonce,
                "items": [
                    [item.request_id.hex(), item.recipient, item.token_uri]
                    + ([item.contract] if item.contract is not None else [])
                    for item in self.items
                ],
                "raw": self.raw.hex(),
                "hashes": list(self.hashes),
                "gas": self.gas,
                "fees": self.fees.to_json(),
                "signed_at": self.signed_at,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> TxRecord:
        value: dict[str, Any] = json.loads(text)
        return cls(
            nonce=int(value["nonce"]),
            items=tuple(
                JournalItem(bytes.fromhex(item[0]), item[1], item[2], item[3] if len(item) > 3 else None)
                for item in value["items"]
            ),
            raw=bytes.fromhex(value["raw"]),
            hashes=tuple(value["hashes"]),
            gas=int(value["gas"]),
            fees=Fees.from_json(value["fees"]),
            signed_at=float(value["signed_at"]),
        )


class MintJournal(Protocol):
    """Durable store of unconfirmed transactions for one (chain, signer)."""

    async def load(self) -> list[TxRecord]: ...

    async def put(self, record: TxRecord) -> None:
        """Store (replace) the record for its nonce; raise FenceLost if this minter no longer holds the lease."""
        ...

    async def delete(self, nonce: int) -> None: ...


class MemoryJournal:
    """A journal that lives as long as the process: for benchmarks and tests without Redis."""

    def __init__(self) -> None:
        self.records: dict[int, TxRecord] = {}

    async def load(self) -> list[TxRecord]:
        return sorted(self.records.values(), key=lambda record: record.nonce)

    async def put(self, record: TxRecord) -> None:
        self.records[record.nonce] = record

    async def delete(self, nonce: int) -> None:
        self.records.pop(nonce, None)
