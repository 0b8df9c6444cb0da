"""Where pinned bytes live: the Pinner interface, what it returns, and its errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from chain.errors import ChainError

__all__ = ["CIDMismatch", "PinnedObject", "Pinner", "PinningError"]


class PinningError(ChainError):
    """Pinning or fetching pinned bytes failed."""

    code: ClassVar[str] = "pinning_error"


class CIDMismatch(PinningError):
    """Bytes do not hash to the CID they were stored or announced under."""

    code: ClassVar[str] = "cid_mismatch"

    def __init__(self, expected: str, actual: str) -> None:
        super().__init__(f"content under {expected} hashes to {actual}")
        self.expected = expected
        self.actual = actual


@dataclass(frozen=True, slots=True)
class PinnedObject:
    """Pinned bytes together with the CID they hash to and their media type."""

    cid: str
    data: bytes
    content_type: str


@runtime_checkable
class Pinner(Protocol):
    """Stores bytes under their CID (`ipfs add --cid-version=1`) and reads them back."""

    async def pin(self, data: bytes, *, content_type: str, name: str | None = None) -> str:
        """Store `data` and return its CID; pinning the same bytes again is a no-op."""
        ...

    async def get(self, cid: str) -> PinnedObject | None:
        """Return the object pinned under `cid`, or None when it is not pinned here."""
        ...
