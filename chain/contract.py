"""Async client of the service contract, PersonaMint v2: deploy, read, encode mints, decode receipts and reverts."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import DecodingError
from eth_account.signers.local import LocalAccount
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.exceptions import (
    ContractLogicError,
    ProviderConnectionError,
    TimeExhausted,
    Web3Exception,
    Web3RPCError,
)
from web3.types import TxReceipt

from chain.contracts.build import load_artifact
from chain.errors import (
    ChainError,
    ChainUnavailable,
    ContractRevert,
    InsufficientFunds,
    MaxSupplyReached,
    MissingRole,
    NonceError,
    RequestAlreadyMinted,
    RpcError,
    TransactionTimeout,
)
from chain.token_uri import token_uri, uri_parts

MINTER_ROLE = keccak(text="MINTER_ROLE")
METADATA_ROLE = keccak(text="METADATA_ROLE")
VOUCHER_SIGNER_ROLE = keccak(text="VOUCHER_SIGNER_ROLE")
DEFAULT_ADMIN_ROLE = b"\x00" * 32
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"

_MINT = "(address,bytes32,bytes32,uint8)"
_VOUCHER = "(address,bytes32,bytes32,uint8,uint256,uint64)"
# IPersonaMintV2, the functions the service calls: its ERC-165 id (their selectors XORed) is how
# the service knows a contract it may mint into.
_INTERFACE_FUNCTIONS = (
    f"mint{_MINT}",
    f"mintBatch({_MINT}[])",
    f"mintWithVoucher({_VOUCHER},bytes)",
    f"voucherDigest({_VOUCHER})",
    "updateTokenURI(uint256,bytes32,uint8)",
    "updateTokenURIs(uint256[],bytes32[],uint8[])",
    "cidOf(uint256)",
    "tokenIdOf(bytes32)",
    "totalMinted()",
)
INTERFACE_ID = functools.reduce(
    lambda acc, signature: bytes(
        a ^ b for a, b in zip(acc, function_signature_to_4byte_selector(signature), strict=True)
    ),
    _INTERFACE_FUNCTIONS,
    b"\x00" * 4,
)
_MINT_SELECTOR = function_signature_to_4byte_selector(f"mint{_MINT}")
_MINT_BATCH_SELECTOR = function_signature_to_4byte_selector(f"mintBatch({_MINT}[])")
_MINT_WITH_VOUCHER_SELECTOR = function_signature_to_4byte_selector(f"mintWithVoucher({_VOUCHER},bytes)")
_UPDATE_TOKEN_URI_SELECTOR = function_signature_to_4byte_selector("updateTokenURI(uint256,bytes32,uint8)")
_MINTED_TOPIC = keccak(text="Minted(bytes32,uint256,address)")
_MINT_SKIPPED_TOPIC = keccak(text="MintSkipped(bytes32,uint256)")

_ERROR_STRING_SELECTOR = function_signature_to_4byte_selector("Error(string)")
_PANIC_SELECTOR = function_signature_to_4byte_selector("Panic(uint256)")
_PANIC_REASONS = {
    0x00: "generic compiler panic",
    0x01: "assert failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "corrupt storage byte array",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to zero-initialized function",
}
# Custom errors that callers branch on get their own exception class (and problem code).
_REVERT_CLASSES: dict[str, type[ContractRevert]] = {
    "RequestAlreadyMinted": RequestAlreadyMinted,
    "MaxSupplyReached": MaxSupplyReached,
    "AccessControlUnauthorizedAccount": MissingRole,
}
# Gas estimates are exact for the state they ran on; the state can move before inclusion
# (e.g. a batch entry that was going to be skipped gets minted instead), so leave room.
_GAS_MARGIN_NUM, _GAS_MARGIN_DEN = 6, 5
# What talking to a node can raise (web3's errors, and chain.rpc's once its retries are spent);
# anything else (TypeError, ...) is a bug and propagates.
_NODE_ERRORS = (Web3Exception, ChainError, OSError, TimeoutError)


@dataclass(frozen=True)
class Deployment:
    """Where and when a PersonaMint contract was deployed."""

    address: str
    chain_id: int
    tx_hash: str
    block_number: int


# MintVoucher's fields in the contract's order (its EIP-712 type).
VOUCHER_FIELDS = (
    ("recipient", "address"),
    ("requestId", "bytes32"),
    ("digest", "bytes32"),
    ("codec", "uint8"),
    ("price", "uint256"),
    ("deadline", "uint64"),
)


@dataclass(frozen=True)
class Voucher:
    """A collector-paid mint: who gets the token, for which request and metadata, at what price, until when."""

    recipient: str
    request_id: bytes
    token_uri: str
    price_wei: int
    deadline: int  # unix seconds


@dataclass(frozen=True)
class Minted:
    """A token minted for a request (from the `Minted` event)."""

    request_id: bytes
    token_id: int
    to: str


@dataclass(frozen=True)
class Skipped:
    """A batch entry skipped: its request id had already minted `existing_token_id`."""

    request_id: bytes
    existing_token_id: int


@dataclass(frozen=True)
class MintOutcome:
    """What a successful mint/mintBatch transaction did, decoded from its receipt."""

    tx_hash: str
    block_number: int
    gas_used: int
    minted: tuple[Minted, ...]
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True)
class _ErrorSpec:
    name: str
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]


def _abi_type(item: Mapping[str, Any]) -> str:
    kind: str = item["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(component) for component in item["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


@functools.cache
def _abi() -> tuple[dict[str, Any], ...]:
    return tuple(load_artifact()["abi"])


@functools.cache
def _bytecode() -> bytes:
    return bytes(HexBytes(load_artifact()["bytecode"]))


@functools.cache
def _error_specs() -> dict[bytes, _ErrorSpec]:
    specs = {}
    for item in _abi():
        if item["type"] != "error":
            continue
        types = tuple(_abi_type(arg) for arg in item["inputs"])
        selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
        names = tuple(arg["name"] or f"arg{i}" for i, arg in enumerate(item["inputs"]))
        specs[selector] = _ErrorSpec(item["name"], names, types)
    return specs


def _format_value(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return str(value)


def _hex(value: bytes | str) -> str:
    return HexBytes(value).to_0x_hex()


def decode_revert(revert_data: bytes | str | None) -> ContractRevert:
    """Decode revert data: a PersonaMint ABI custom error, Error(string) or Panic."""
    data = bytes(HexBytes(revert_data)) if revert_data else b""
    if not data:
        return ContractRevert("reverted without a reason", data=data)
    selector, payload = data[:4], data[4:]
    try:
        if selector == _ERROR_STRING_SELECTOR:
            (reason,) = abi_decode(["string"], payload)
            return ContractRevert(
                f"reverted: {reason}",
                error_name="Error",
                args={"message": reason},
                data=data,
            )
        if selector == _PANIC_SELECTOR:
            (panic_code,) = abi_decode(["uint256"], payload)
            reason = _PANIC_REASONS.get(panic_code, "unknown panic code")
            return ContractRevert(
                f"reverted: Panic(0x{panic_code:02x}: {reason})",
                error_name="Panic",
                args={"code": panic_code},
                data=data,
            )
        spec = _error_specs().get(selector)
        if spec is not None:
            values = abi_decode(list(spec.arg_types), payload)
            args = {
                name: to_checksum_address(value) if kind == "address" else value
                for name, kind, value in zip(spec.arg_names, spec.arg_types, values, strict=True)
            }
            shown = ", ".join(f"{name}={_format_value(value)}" for name, value in args.items())
            error_class = _REVERT_CLASSES.get(spec.name, ContractRevert)
            return error_class(
                f"reverted: {spec.name}({shown})",
                error_name=spec.name,
                args=args,
                data=data,
            )
    except (DecodingError, OverflowError, ValueError):
        pass
    # Unknown selector or malformed payload: keep the raw data for whoever investigates.
    return ContractRevert(
        f"reverted with unrecognized error data 0x{data[:4].hex()} ({len(data)} bytes)",
        data=data,
    )


def _rpc_message(exc: Web3RPCError) -> str:
    error = (exc.rpc_response or {}).get("error")
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return f"{error['message']} (code {error.get('code')})"
    return exc.message


def _translate(exc: BaseException) -> ChainError:
    """Map a web3/transport exception onto the chain error hierarchy."""
    if isinstance(exc, ChainError):
        return exc
    if isinstance(exc, ContractLogicError):
        if isinstance(exc.data, str) and exc.data.startswith("0x"):
            return decode_revert(exc.data)
        message = exc.message or "execution reverted"
        # web3 routes every eth_call/eth_estimateGas error through its revert parser, so
        # plain node errors (no data) arrive here too.
        if "insufficient funds" in message.lower():
            return InsufficientFunds(message)
        if "revert" in message.lower():
            return ContractRevert(message)
        return RpcError(message)
    if isinstance(exc, Web3RPCError):
        message = _rpc_message(exc)
        lowered = message.lower()
        if "insufficient funds" in lowered:
            return InsufficientFunds(message)
        if "nonce" in lowered or "already known" in lowered:
            return NonceError(message)
        return RpcError(message)
    if isinstance(exc, (ProviderConnectionError, OSError, TimeoutError)):
        return ChainUnavailable(f"JSON-RPC endpoint unreachable: {exc}")
    return RpcError(f"{type(exc).__name__}: {exc}")


def _request_id(value: bytes) -> bytes:
    if not isinstance(value, bytes) or len(value) != 32:
        raise ValueError("request_id must be exactly 32 bytes")
    return value


async def send_transaction(
    w3: AsyncWeb3[Any],
    account: LocalAccount,
    tx: Mapping[str, Any],
    *,
    receipt_timeout: float = 120.0,
) -> TxReceipt:
    """Fill nonce, chain id, EIP-1559 fees and gas; sign, send, wait for the receipt.

    Reverts (at estimation or on chain) raise decoded `ContractRevert`s. Not for
    pipelined sending: it takes the pending nonce from the node each time.
    """
    tx = dict(tx)
    tx.setdefault("value", 0)
    if isinstance(tx.get("data"), (bytes, bytearray)):
        tx["data"] = _hex(bytes(tx["data"]))
    if "from" in tx and to_checksum_address(tx["from"]) != account.address:
        raise ValueError("tx['from'] does not match the signing account")
    tx["from"] = account.address
    try:
        tx.setdefault("chainId", await w3.eth.chain_id)
        if "nonce" not in tx:
            tx["nonce"] = await w3.eth.get_transaction_count(account.address, "pending")
        if "gas" not in tx:
            # Estimated without fee fields: with a price set, nodes cap the estimate by
            # the sender's balance and report a broke sender as "out of gas"; without,
            # the send itself fails with a clear "insufficient funds".
            probe = {key: tx[key] for key in ("from", "to", "data", "value") if key in tx}
            estimate = await w3.eth.estimate_gas(probe)  # type: ignore[arg-type]
            tx["gas"] = estimate * _GAS_MARGIN_NUM // _GAS_MARGIN_DEN
        if "gasPrice" not in tx and "maxFeePerGas" not in tx:
            latest = await w3.eth.get_block("latest")
            priority = tx.get("maxPriorityFeePerGas")
            if priority is None:
                priority = await w3.eth.max_priority_fee
                tx["maxPriorityFeePerGas"] = priority
            # Twice the base fee survives several full blocks of base-fee growth.
            tx["maxFeePerGas"] = 2 * latest["baseFeePerGas"] + priority
        signed = account.sign_transaction(tx)
        tx_hash = await w3.eth.send_raw_transaction(signed.raw_transaction)
    except _NODE_ERRORS as exc:
        raise _translate(exc) from exc
    try:
        receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=receipt_timeout)
    except TimeExhausted as exc:
        raise TransactionTimeout(_hex(tx_hash), receipt_timeout) from exc
    except _NODE_ERRORS as exc:
        raise _translate(exc) from exc
    if receipt["status"] != 1:
        raise await _explain_failure(w3, tx, receipt)
    return receipt


async def _explain_failure(w3: AsyncWeb3[Any], tx: Mapping[str, Any], receipt: TxReceipt) -> ContractRevert:
    """Recover why a mined transaction reverted by replaying it on the parent block."""
    tx_hash = _hex(receipt["transactionHash"])
    if receipt["gasUsed"] >= tx["gas"]:
        return ContractRevert(
            f"transaction {tx_hash} ran out of gas ({receipt['gasUsed']} used)",
            tx_hash=tx_hash,
        )
    call = {key: tx[key] for key in ("from", "to", "data", "value", "gas") if key in tx}
    replayed: ChainError | None = None
    try:
        parent = receipt["blockNumber"] - 1
        await w3.eth.call(call, block_identifier=parent)  # type: ignore[arg-type]
    except ContractLogicError as exc:
        replayed = _translate(exc)
    except _NODE_ERRORS:
        # Best effort: the receipt already proves the failure; the reason is a bonus.
        replayed = None
    if isinstance(replayed, ContractRevert):
        replayed.tx_hash = tx_hash
        return replayed
    return ContractRevert(f"transaction {tx_hash} reverted (reason unavailable)", tx_hash=tx_hash)


def _encode_constructor_args(args: Sequence[Any]) -> bytes:
    constructor = next(item for item in _abi() if item["type"] == "constructor")
    types = [_abi_type(arg) for arg in constructor["inputs"]]
    return abi_encode(types, list(args))


async def deploy_persona_mint(
    w3: AsyncWeb3[Any],
    deployer: LocalAccount,
    *,
    name: str,
    symbol: str,
    admin: str,
    minter: str,
    contract_uri: str = "",
    royalty_receiver: str | None = None,
    royalty_bps: int = 0,
    max_supply: int = 0,
    receipt_timeout: float = 120.0,
) -> Deployment:
    """Deploy PersonaMint from the committed artifact; `max_supply=0`: unlimited."""
    constructor_args = (
        name,
        symbol,
        to_checksum_address(admin),
        to_checksum_address(minter),
        contract_uri,
        to_checksum_address(royalty_receiver or ZERO_ADDRESS),
        royalty_bps,
        max_supply,
    )
    data = _bytecode() + _encode_constructor_args(constructor_args)
    receipt = await send_transaction(w3, deployer, {"data": data}, receipt_timeout=receipt_timeout)
    address = receipt["contractAddress"]
    if address is None:
        raise RpcError(f"deployment receipt {_hex(receipt['transactionHash'])} has no contractAddress")
    try:
        chain_id = await w3.eth.chain_id
    except _NODE_ERRORS as exc:
        raise _translate(exc) from exc
    return Deployment(
        address=to_checksum_address(address),
        chain_id=chain_id,
        tx_hash=_hex(receipt["transactionHash"]),
        block_number=receipt["blockNumber"],
    )


class PersonaMint:
    """A deployed PersonaMint contract reached through an AsyncWeb3 connection."""

    def __init__(self, w3: AsyncWeb3[Any], address: str) -> None:
        self._w3 = w3
        self._address = to_checksum_address(address)
        self._contract = w3.eth.contract(address=self._address, abi=list(_abi()))

    @property
    def address(self) -> str:
        return self._address

    async def _read(self, function_name: str, *args: Any) -> Any:
        try:
            return await getattr(self._contract.functions, function_name)(*args).call()
        except _NODE_ERRORS as exc:
            raise _translate(exc) from exc

    async def has_code(self) -> bool:
        """True when runtime code exists at the address (the deployment is on this chain)."""
        try:
            code = await self._w3.eth.get_code(self._address)
        except _NODE_ERRORS as exc:
            raise _translate(exc) from exc
        return len(code) > 0

    async def token_id_of(self, request_id: bytes) -> int | None:
        """The token minted for `request_id`, or None if it has not minted."""
        token_id: int = await self._read("tokenIdOf", _request_id(request_id))
        return token_id or None

    async def owner_of(self, token_id: int) -> str:
        return to_checksum_address(await self._read("ownerOf", token_id))

    async def token_uri(self, token_id: int) -> str:
        uri: str = await self._read("tokenURI", token_id)
        return uri

    async def is_minter(self, address: str) -> bool:
        has_role: bool = await self._read("hasRole", MINTER_ROLE, to_checksum_address(address))
        return has_role

    async def is_admin(self, address: str) -> bool:
        has_role: bool = await self._read("hasRole", DEFAULT_ADMIN_ROLE, to_checksum_address(address))
        return has_role

    async def total_minted(self) -> int:
        count: int = await self._read("totalMinted")
        return count

    async def max_supply(self) -> int:
        """The supply cap, 0 when unlimited."""
        cap: int = await self._read("maxSupply")
        return cap

    async def contract_uri(self) -> str:
        uri: str = await self._read("contractURI")
        return uri

    async def royalty_info(self, token_id: int, sale_price: int) -> tuple[str, int]:
        """ERC-2981 (receiver, amount) for a sale of `token_id` at `sale_price`."""
        receiver, amount = await self._read("royaltyInfo", token_id, sale_price)
        return to_checksum_address(receiver), int(amount)

    async def supports_interface(self, interface_id: bytes) -> bool:
        supported: bool = await self._read("supportsInterface", interface_id)
        return supported

    async def is_persona_mint_v2(self) -> bool:
        """Whether the address holds a contract that reports IPersonaMintV2 (ERC-165): code without
        `supportsInterface`, or one that says no, is not a contract this service can mint into."""
        if not await self.has_code():
            return False
        try:
            return await self.supports_interface(INTERFACE_ID)
        except ContractRevert:
            return False

    async def has_role(self, role: bytes, address: str) -> bool:
        has_role: bool = await self._read("hasRole", role, to_checksum_address(address))
        return has_role

    def mint_call_data(self, to: str, uri: str, request_id: bytes) -> bytes:
        """Calldata for `mint(to, requestId, digest, codec)` of the token URI `uri` (`ipfs://b…`);
        the sender picks its own nonce/fees."""
        digest, codec = uri_parts(uri)
        return _MINT_SELECTOR + abi_encode(
            ["address", "bytes32", "bytes32", "uint8"],
            [to_checksum_address(to), _request_id(request_id), digest, codec],
        )

    def mint_batch_call_data(
        self,
        recipients: Sequence[str],
        uris: Sequence[str],
        request_ids: Sequence[bytes],
    ) -> bytes:
        """Calldata for `mintBatch((to, requestId, digest, codec)[])`: the token URIs' CIDs as the
        contract stores them."""
        if not len(recipients) == len(uris) == len(request_ids):
            raise ValueError("recipients, uris and request_ids must have the same length")
        mints = [
            (to_checksum_address(to), _request_id(request_id), *uri_parts(uri))
            for to, uri, request_id in zip(recipients, uris, request_ids, strict=True)
        ]
        return _MINT_BATCH_SELECTOR + abi_encode([f"{_MINT}[]"], [mints])

    @staticmethod
    def minted_in_call_data(data: bytes) -> list[tuple[bytes, str, str]]:
        """(request id, recipient, token URI) of each mint that `mint`/`mintBatch`/`mintWithVoucher`
        call data asks for; [] for other call data, or call data that does not decode."""
        selector, args = data[:4], data[4:]
        try:
            if selector == _MINT_SELECTOR:
                to, request_id, digest, codec = abi_decode(["address", "bytes32", "bytes32", "uint8"], args)
                mints = [(to, request_id, digest, codec)]
            elif selector == _MINT_BATCH_SELECTOR:
                (mints,) = abi_decode([f"{_MINT}[]"], args)
            elif selector == _MINT_WITH_VOUCHER_SELECTOR:
                voucher, _ = abi_decode([_VOUCHER, "bytes"], args)
                mints = [voucher[:4]]
            else:
                return []
            return [(bytes(rid), to_checksum_address(to), token_uri(bytes(d), c)) for to, rid, d, c in mints]
        except (DecodingError, ValueError):
            return []

    def voucher_typed_data(self, chain_id: int, voucher: Voucher) -> dict[str, Any]:
        """The EIP-712 message a VOUCHER_SIGNER_ROLE key signs for `voucher` (what a wallet shows;
        JSON as `eth_signTypedData` takes it): domain PersonaMint / 2 / chain / this contract."""
        digest, codec = uri_parts(voucher.token_uri)
        return {
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "MintVoucher": [{"name": name, "type": kind} for name, kind in VOUCHER_FIELDS],
            },
            "primaryType": "MintVoucher",
            "domain": {"name": "PersonaMint", "version": "2", "chainId": chain_id, "verifyingContract": self._address},
            "message": {
                "recipient": to_checksum_address(voucher.recipient),
                "requestId": _hex(_request_id(voucher.request_id)),
                "digest": _hex(digest),
                "codec": codec,
                "price": voucher.price_wei,
                "deadline": voucher.deadline,
            },
        }

    def mint_with_voucher_call_data(self, voucher: Voucher, signature: bytes) -> bytes:
        """Calldata for `mintWithVoucher(voucher, signature)`: what the collector sends, with the price as value."""
        digest, codec = uri_parts(voucher.token_uri)
        fields = (
            to_checksum_address(voucher.recipient),
            _request_id(voucher.request_id),
            digest,
            codec,
            voucher.price_wei,
            voucher.deadline,
        )
        return _MINT_WITH_VOUCHER_SELECTOR + abi_encode([_VOUCHER, "bytes"], [fields, signature])

    def update_token_uri_call_data(self, token_id: int, uri: str) -> bytes:
        """Calldata for `updateTokenURI(tokenId, digest, codec)` (METADATA_ROLE; emits MetadataUpdate)."""
        return _UPDATE_TOKEN_URI_SELECTOR + abi_encode(["uint256", "bytes32", "uint8"], [token_id, *uri_parts(uri)])

    def parse_receipt(self, receipt: Mapping[str, Any]) -> MintOutcome:
        """Decode the Minted/MintSkipped events this contract emitted in a receipt."""
        tx_hash = _hex(receipt["transactionHash"])
        if receipt["status"] != 1:
            # A reverted transaction has no logs; an empty outcome would read as
            # "nothing to mint" and hide the failure.
            raise ContractRevert(f"transaction {tx_hash} reverted", tx_hash=tx_hash)
        minted: list[Minted] = []
        skipped: list[Skipped] = []
        for log in receipt["logs"]:
            # Another contract in the same transaction could emit look-alike events.
            if to_checksum_address(log["address"]) != self._address:
                continue
            topics = [bytes(HexBytes(topic)) for topic in log["topics"]]
            if not topics:
                continue
            if topics[0] == _MINTED_TOPIC and len(topics) == 4:
                minted.append(
                    Minted(
                        request_id=topics[1],
                        token_id=int.from_bytes(topics[2], "big"),
                        to=to_checksum_address(topics[3][12:]),
                    )
                )
            elif topics[0] == _MINT_SKIPPED_TOPIC and len(topics) == 3:
                skipped.append(
                    Skipped(
                        request_id=topics[1],
                        existing_token_id=int.from_bytes(topics[2], "big"),
                    )
                )
        return MintOutcome(
            tx_hash=tx_hash,
            block_number=receipt["blockNumber"],
            gas_used=receipt["gasUsed"],
            minted=tuple(minted),
            skipped=tuple(skipped),
        )

    def decode_error(self, revert_data: bytes | str) -> ContractRevert:
        """Decode revert data from this contract into a readable `ContractRevert`."""
        return decode_revert(revert_data)

    async def mint(
        self,
        minter: LocalAccount,
        to: str,
        uri: str,
        request_id: bytes,
        *,
        receipt_timeout: float = 120.0,
    ) -> MintOutcome:
        """Send one `mint` and wait (simple path; the service minter pipelines its own)."""
        tx = {"to": self._address, "data": self.mint_call_data(to, uri, request_id)}
        receipt = await send_transaction(self._w3, minter, tx, receipt_timeout=receipt_timeout)
        return self.parse_receipt(receipt)

    async def mint_batch(
        self,
        minter: LocalAccount,
        recipients: Sequence[str],
        uris: Sequence[str],
        request_ids: Sequence[bytes],
        *,
        receipt_timeout: float = 120.0,
    ) -> MintOutcome:
        """Send one `mintBatch` and wait; already used request ids come back in `skipped`."""
        data = self.mint_batch_call_data(recipients, uris, request_ids)
        receipt = await send_transaction(
            self._w3, minter, {"to": self._address, "data": data}, receipt_timeout=receipt_timeout
        )
        return self.parse_receipt(receipt)


__all__ = [
    "DEFAULT_ADMIN_ROLE",
    "INTERFACE_ID",
    "METADATA_ROLE",
    "MINTER_ROLE",
    "VOUCHER_SIGNER_ROLE",
    "Deployment",
    "MintOutcome",
    "Minted",
    "PersonaMint",
    "Skipped",
    "Voucher",
    "decode_revert",
    "deploy_persona_mint",
    "send_transaction",
]
