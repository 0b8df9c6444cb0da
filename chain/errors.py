"""Exceptions raised by the chain package, each with a stable machine-readable code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

# Messages are built only from addresses, hashes, decoded revert arguments and node
# responses; never from an account object or transaction signing input, so a private key
# cannot leak into logs or problem details.


class ChainError(Exception):
    """Root of every error raised by `chain`."""

    code: ClassVar[str] = "chain_error"


class CompileError(ChainError):
    """The Solidity toolchain (node + npm solc) is missing or compilation failed."""

    code: ClassVar[str] = "compile_error"


class ChainUnavailable(ChainError):
    """The JSON-RPC endpoint cannot be reached."""

    code: ClassVar[str] = "chain_unavailable"


class AnvilError(ChainUnavailable):
    """The local anvil node could not be found, started or reached."""

    code: ClassVar[str] = "chain_unavailable"


class RpcError(ChainError):
    """The node answered a JSON-RPC request with an error that is not a revert."""

    code: ClassVar[str] = "rpc_error"


class NonceError(RpcError):
    """The node rejected the transaction's nonce (too low, too high, or already known).

    A sender that owns its nonce should resync from the chain's pending nonce.
    """

    code: ClassVar[str] = "nonce_error"


class InsufficientFunds(ChainError):
    """The sending account cannot pay for gas (plus value)."""

    code: ClassVar[str] = "insufficient_funds"


class TransactionTimeout(ChainError):
    """A sent transaction was not mined within the wait limit; it may still be mined."""

    code: ClassVar[str] = "tx_timeout"

    def __init__(self, tx_hash: str, timeout: float) -> None:
        super().__init__(f"transaction {tx_hash} not mined within {timeout:g}s")
        self.tx_hash = tx_hash
        self.timeout = timeout


class ContractRevert(ChainError):
    """A contract call reverted; carries the decoded error name and arguments.

    `error_name` is the custom error name (or "Error"/"Panic"), or None when the revert
    carried no data or an unknown selector. `args` maps ABI argument names to decoded
    values in declaration order.
    """

    code: ClassVar[str] = "reverted"

    def __init__(
        self,
        message: str,
        *,
        error_name: str | None = None,
        args: Mapping[str, Any] | None = None,
        data: bytes = b"",
        tx_hash: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.error_name = error_name
        self.error_args: dict[str, Any] = dict(args or {})
        self.data = data
        self.tx_hash = tx_hash


class RequestAlreadyMinted(ContractRevert):
    """The request id already minted a token; `token_id` is that token."""

    code: ClassVar[str] = "already_minted"

    @property
    def request_id(self) -> bytes:
        value: bytes = self.error_args["requestId"]
        return value

    @property
    def token_id(self) -> int:
        value: int = self.error_args["tokenId"]
        return value


class MaxSupplyReached(ContractRevert):
    """The collection's max supply is exhausted."""

    code: ClassVar[str] = "max_supply_reached"

    @property
    def max_supply(self) -> int:
        value: int = self.error_args["maxSupply"]
        return value


class MissingRole(ContractRevert):
    """The sender lacks the role the function needs (e.g. signer lost MINTER_ROLE)."""

    code: ClassVar[str] = "missing_role"

    @property
    def account(self) -> str:
        value: str = self.error_args["account"]
        return value

    @property
    def role(self) -> bytes:
        value: bytes = self.error_args["neededRole"]
        return value
