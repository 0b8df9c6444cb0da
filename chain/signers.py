"""Who signs the service's transactions: a keystore, a raw key (local only) or a remote signer.

The hot key only ever needs MINTER_ROLE; the admin key is never loaded by the service.
Every signer returns raw signed transactions; a remote signer's answer is decoded and
checked against what was asked before it is trusted, so a compromised or buggy signer
cannot slip a different transaction (or a different sender) past the minter.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import httpx
import rlp
from eth_account import Account
from eth_account._utils.legacy_transactions import Transaction as LegacyTransaction
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils.address import is_address, to_checksum_address
from hexbytes import HexBytes
from rlp.exceptions import DecodingError as RlpDecodingError

from chain.errors import ChainError

__all__ = [
    "LocalSigner",
    "RemoteSigner",
    "RemoteSignerError",
    "Signer",
    "SignerConfigError",
    "SignerError",
    "load_keystore",
    "load_signer",
    "read_password_file",
]

log = logging.getLogger("personamint.signer")

Environment = Literal["local", "production"]


class SignerError(ChainError):
    """Signing failed or the signer is unusable."""

    code: ClassVar[str] = "signer_error"


class SignerConfigError(SignerError):
    """The signer is misconfigured: no source or several, a bad keystore or password, a raw key in production."""

    code: ClassVar[str] = "signer_config"


class RemoteSignerError(SignerError):
    """The remote signer could not be reached, refused, or signed something other than what was asked."""

    code: ClassVar[str] = "remote_signer_error"


@runtime_checkable
class Signer(Protocol):
    """Signs transactions for one address."""

    @property
    def address(self) -> str:
        """Checksum address whose transactions this signer signs."""
        ...

    async def sign_transaction(self, tx: Mapping[str, Any]) -> bytes:
        """Return the raw signed transaction for a fully filled `tx` (nonce, chainId, gas, fees)."""
        ...

    async def sign_typed_data(self, typed_data: Mapping[str, Any]) -> bytes:
        """Return the 65-byte signature of an EIP-712 message (`types`, `primaryType`, `domain`, `message`)."""
        ...


class LocalSigner:
    """A key held in this process (decrypted from a keystore, or a raw key in local mode).

    `account` exposes the eth-account object for code that signs synchronously.
    """

    def __init__(self, account: LocalAccount, *, source: str) -> None:
        self._account = account
        self.source = source

    @property
    def address(self) -> str:
        return str(self._account.address)

    @property
    def account(self) -> LocalAccount:
        return self._account

    async def sign_transaction(self, tx: Mapping[str, Any]) -> bytes:
        return bytes(self._account.sign_transaction(dict(tx)).raw_transaction)

    async def sign_typed_data(self, typed_data: Mapping[str, Any]) -> bytes:
        return bytes(self._account.sign_typed_data(full_message=dict(typed_data)).signature)

    def __repr__(self) -> str:
        # Never the key: reprs end up in logs and tracebacks.
        return f"LocalSigner({self.address}, source={self.source!r})"


def read_password_file(path: Path) -> str:
    """The password in `path`, without its trailing newline; warns when others can read the file."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise SignerConfigError(f"keystore password file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("keystore password file %s is accessible to group/others (mode %o)", path, mode & 0o777)
    password = text.rstrip("\r\n")
    if not password:
        raise SignerConfigError(f"keystore password file {path} is empty")
    return password


def load_keystore(path: Path, *, password: str) -> LocalSigner:
    """Decrypt an Ethereum V3 JSON keystore (scrypt or pbkdf2) into a LocalSigner."""
    try:
        keystore = json.loads(path.read_text())
    except OSError as exc:
        raise SignerConfigError(f"keystore {path}: {exc.strerror}") from None
    except ValueError:
        raise SignerConfigError(f"keystore {path} is not JSON") from None
    if not isinstance(keystore, dict) or not ("crypto" in keystore or "Crypto" in keystore):
        raise SignerConfigError(f"keystore {path} is not a V3 keystore (no 'crypto')")
    try:
        key = Account.decrypt(keystore, password)
    except ValueError:
        # eth-account says "MAC mismatch"; the password is the usual cause.
        raise SignerConfigError(f"keystore {path}: wrong password (MAC mismatch)") from None
    account: LocalAccount = Account.from_key(key)
    declared = str(keystore.get("address") or "").lower().removeprefix("0x")
    if declared and declared != account.address.lower().removeprefix("0x"):
        raise SignerConfigError(f"keystore {path} declares address {declared} but holds {account.address}")
    return LocalSigner(account, source=f"keystore:{path}")


class RemoteSigner:
    """A signer behind HTTP speaking Web3Signer's eth1 JSON-RPC (`eth_accounts`, `eth_signTransaction`,
    `eth_signTypedData`).

    Whatever sits behind it (Web3Signer with a KMS or an HSM, a custody API shim) holds the
    key; this process sees only signed transactions, each decoded and compared with the
    request: same sender, chain, nonce, recipient, value, data, gas and fees.
    """

    def __init__(
        self,
        url: str,
        *,
        address: str,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
        retries: int = 2,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if not is_address(address):
            raise SignerConfigError(f"remote signer address {address!r} is not an address")
        self.url = url
        self._address = to_checksum_address(address)
        self.timeout_s = timeout_s
        self.retries = retries
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(trust_env=False)
        self._headers = dict(headers or {})
        self._ids = itertools.count(1)

    @property
    def address(self) -> str:
        return self._address

    def __repr__(self) -> str:
        return f"RemoteSigner({self._address})"

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def check(self) -> None:
        """Fail unless the remote signer answers and signs for our address (call at start-up)."""
        accounts = await self._call("eth_accounts", [])
        if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
            raise RemoteSignerError("remote signer: eth_accounts did not answer a list of addresses")
        if self._address.lower() not in {a.lower() for a in accounts}:
            raise RemoteSignerError(f"remote signer does not hold {self._address}")

    async def sign_transaction(self, tx: Mapping[str, Any]) -> bytes:
        request = _rpc_transaction(tx, self._address)
        result = await self._call("eth_signTransaction", [request])
        # Web3Signer answers the raw hex; geth-style signers answer {"raw": …, "tx": …}.
        if isinstance(result, dict):
            result = result.get("raw")
        if not isinstance(result, str):
            raise RemoteSignerError("remote signer: eth_signTransaction did not answer a raw transaction")
        try:
            raw = bytes(HexBytes(result))
        except ValueError:
            raise RemoteSignerError("remote signer: the signed transaction is not hex") from None
        _check_signed(raw, request, self._address)
        return raw

    async def sign_typed_data(self, typed_data: Mapping[str, Any]) -> bytes:
        """Web3Signer's `eth_signTypedData` [address, typed data]; the signature must recover to our address."""
        result = await self._call("eth_signTypedData", [self._address, dict(typed_data)])
        try:
            signature = bytes(HexBytes(result)) if isinstance(result, str) else b""
        except ValueError:
            signature = b""
        if len(signature) != 65:
            raise RemoteSignerError("remote signer: eth_signTypedData did not answer a 65-byte signature")
        try:
            recovered = Account.recover_message(encode_typed_data(full_message=dict(typed_data)), signature=signature)
        except Exception:  # noqa: BLE001 - eth-account raises several kinds for a malformed signature
            recovered = None
        if recovered != self._address:
            raise RemoteSignerError("remote signer: the typed-data signature is not by the signer's address")
        return signature

    async def _call(self, method: str, params: list[Any]) -> Any:
        payload = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": params}
        problem = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(0.2 * 2**attempt)
            try:
                response = await self._client.post(
                    self.url, json=payload, headers=self._headers, timeout=self.timeout_s
                )
            except httpx.TransportError as exc:
                problem = type(exc).__name__
                continue
            if response.status_code >= 500:
                problem = f"HTTP {response.status_code}"
                continue
            if not response.is_success:
                raise RemoteSignerError(f"remote signer refused {method}: HTTP {response.status_code}")
            try:
                body = response.json()
            except ValueError:
                raise RemoteSignerError(f"remote signer answered {method} with a body that is not JSON") from None
            if not isinstance(body, dict):
                raise RemoteSignerError(f"remote signer answered {method} with JSON that is not an object")
            if "error" in body:
                error = body["error"] if isinstance(body["error"], dict) else {}
                message = str(error.get("message", "error"))[:200]
                raise RemoteSignerError(f"remote signer refused {method}: {message}")
            return body.get("result")
        raise RemoteSignerError(f"remote signer unreachable for {method} after {self.retries + 1} attempts ({problem})")


_QUANTITIES = ("nonce", "gas", "value", "chainId", "maxFeePerGas", "maxPriorityFeePerGas", "gasPrice")


def _rpc_transaction(tx: Mapping[str, Any], sender: str) -> dict[str, Any]:
    """The JSON-RPC form of a filled transaction; refuses one the minter did not finish."""
    if "from" in tx and to_checksum_address(tx["from"]) != sender:
        raise SignerError(f"transaction is from {tx['from']}, not the signer {sender}")
    missing = [key for key in ("nonce", "gas", "chainId") if key not in tx]
    if "maxFeePerGas" not in tx and "gasPrice" not in tx:
        missing.append("maxFeePerGas or gasPrice")
    if missing:
        raise SignerError(f"transaction is missing {', '.join(missing)}; fill it before signing")
    request: dict[str, Any] = {"from": sender}
    for key in _QUANTITIES:
        if key in tx and tx[key] is not None:
            request[key] = hex(int(tx[key]))
    request.setdefault("value", "0x0")
    if tx.get("to"):
        request["to"] = to_checksum_address(tx["to"])
    data = tx.get("data", b"")
    request["data"] = HexBytes(data).to_0x_hex() if data else "0x"
    if "maxFeePerGas" in tx:
        request["type"] = "0x2"
    return request


def _check_signed(raw: bytes, request: Mapping[str, Any], sender: str) -> None:
    """Decode the signed transaction and compare it, field by field, with the request."""
    try:
        signer = Account.recover_transaction(raw)
        if raw and raw[0] <= 0x7F:
            fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        else:
            legacy = rlp.decode(raw, LegacyTransaction).as_dict()
            v = int(legacy["v"])
            legacy["chainId"] = (v - 35) // 2 if v >= 35 else None
            fields = legacy
    except (ValueError, TypeError, RlpDecodingError) as exc:
        raise RemoteSignerError(f"remote signer answered an undecodable transaction ({type(exc).__name__})") from None
    if to_checksum_address(signer) != sender:
        raise RemoteSignerError(f"remote signer signed as {signer}, not {sender}")
    for key in _QUANTITIES:
        if key in request and int(fields.get(key) or 0) != int(request[key], 16):
            raise RemoteSignerError(f"remote signer changed {key}")
    wanted_to = request.get("to", "").lower()
    signed_to = HexBytes(fields.get("to") or b"").to_0x_hex().lower() if fields.get("to") else ""
    if signed_to != wanted_to:
        raise RemoteSignerError("remote signer changed the recipient")
    if HexBytes(fields.get("data") or b"") != HexBytes(request["data"]):
        raise RemoteSignerError("remote signer changed the calldata")


def load_signer(
    *,
    env: Environment,
    raw_key: str | None = None,
    keystore_path: Path | None = None,
    password: str | None = None,
    password_file: Path | None = None,
    remote_url: str | None = None,
    remote_address: str | None = None,
    remote_headers: Mapping[str, str] | None = None,
) -> Signer:
    """Build the service's signer from exactly one source.

    - keystore: `keystore_path` plus the password, given directly (from the environment)
      or as `password_file`;
    - remote: `remote_url` and the `remote_address` it signs for;
    - raw key: `raw_key`, only when `env == "local"` (a raw key in an environment
      variable is readable by anything that can read the process environment).
    """
    sources = [
        name
        for name, value in (("raw key", raw_key), ("keystore", keystore_path), ("remote signer", remote_url))
        if value
    ]
    if len(sources) != 1:
        found = ", ".join(sources) or "none"
        raise SignerConfigError(
            f"configure exactly one signer (keystore, remote signer, or a raw key locally); found: {found}"
        )
    if raw_key:
        if env != "local":
            raise SignerConfigError("a raw signer key is refused outside local mode; use a keystore or a remote signer")
        try:
            account: LocalAccount = Account.from_key(raw_key)
        except (ValueError, TypeError):
            raise SignerConfigError("the raw signer key is not a 32-byte hex private key") from None
        return LocalSigner(account, source="raw key")
    if keystore_path is not None:
        if password is not None and password_file is not None:
            raise SignerConfigError("give the keystore password either directly or as a file, not both")
        if password_file is not None:
            password = read_password_file(password_file)
        if not password:
            raise SignerConfigError(f"keystore {keystore_path} needs a password (environment or password file)")
        return load_keystore(keystore_path, password=password)
    assert remote_url is not None
    if not remote_address:
        raise SignerConfigError("a remote signer needs the address it signs for")
    return RemoteSigner(remote_url, address=remote_address, headers=remote_headers)
