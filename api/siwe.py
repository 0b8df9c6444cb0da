"""Sign-In with Ethereum (EIP-4361): a strict message parser, the checks, single-use nonces and sessions.

The maintained `siwe` package pins eth-account < 0.14 (this project runs 0.14), so the parser is
written here from the EIP's ABNF. A signature is first recovered with eth-account (an EOA); when
it does not recover to the message's address and that address holds code, the wallet contract
itself is asked over JSON-RPC (EIP-1271 `isValidSignature`), as Safe and ERC-4337 accounts sign.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct
from eth_utils.address import is_checksum_address
from redis.asyncio import Redis

from api.errors import ApiError
from api.keys import SCOPES, SESSION_PREFIX, digest
from api.validation import is_ascii_digits
from chain.rpc import JsonRpc, RpcCallError
from jobs import lua
from jobs.ids import wallet_tenant
from jobs.keys import session_key, siwe_nonce_key
from personalization.errors import HistoryError

_PREAMBLE = " wants you to sign in with your Ethereum account:"
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"
# Every pattern is applied with `fullmatch` (`$` would also match before a trailing newline) and
# spells digits [0-9] (`\d` takes every script's digits).
_DOMAIN = re.compile(
    rf"(?:(?P<scheme>{_SCHEME})://)?(?P<domain>(?:[A-Za-z0-9\-._~%!$&'()*+,;=]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{{1,5}})?)"
)
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_URI = re.compile(rf"{_SCHEME}:[^\s]+")
_NONCE = re.compile(r"[A-Za-z0-9]{8,}")
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|[+\-][0-9]{2}:[0-9]{2})"
)
_REQUEST_ID = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*")
# statement = *( reserved / unreserved / " " ) (RFC 3986 character classes, so ASCII only)
_STATEMENT = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;= ]+")
_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
_ANY_SIGNATURE = re.compile(r"0x(?:[0-9a-fA-F]{2})+")
MAX_MESSAGE_CHARS = 4096
# A contract wallet's signature can be long: a Safe concatenates one 65-byte part per owner.
MAX_SIGNATURE_BYTES = 4096
# bytes4(keccak256("isValidSignature(bytes32,bytes)")): selector and success value (EIP-1271).
EIP1271_MAGIC = bytes.fromhex("1626ba7e")


class SiweError(ApiError):
    """A refused sign-in; `code` says which check failed."""


def _malformed(detail: str) -> SiweError:
    return SiweError(400, "invalid_siwe_message", f"not an EIP-4361 message: {detail}")


def parse_datetime(value: str, field: str) -> datetime:
    """RFC 3339 date-time with a zone (as EIP-4361 requires)."""
    if not _DATETIME.fullmatch(value):
        raise _malformed(f"{field} is not an RFC 3339 date-time")
    head, _, rest = value.partition(".")
    if rest:  # Python parses at most microseconds: trim extra fraction digits.
        zone_at = next(i for i, c in enumerate(rest) if c not in "0123456789")
        value = f"{head}.{rest[:zone_at][:6]}{rest[zone_at:]}"
    try:
        # In the try too: a zone offset can move 0001-01-01 or 9999-12-31 out of datetime's range.
        return datetime.fromisoformat(value.replace("z", "Z").replace("t", "T")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise _malformed(f"{field} is not a valid date-time") from None


def _rfc3339(moment: datetime) -> str:
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


@dataclass(frozen=True)
class SiweMessage:
    domain: str
    address: str
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: datetime
    scheme: str | None = None
    statement: str | None = None
    expiration_time: datetime | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = ()

    def to_text(self) -> str:
        """The EIP-4361 text a wallet signs (what a dApp front end builds)."""
        prefix = f"{self.scheme}://{self.domain}" if self.scheme else self.domain
        lines = [f"{prefix}{_PREAMBLE}", self.address, ""]
        if self.statement is not None:
            lines += [self.statement, ""]
        else:
            lines += [""]
        lines += [
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {_rfc3339(self.issued_at)}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {_rfc3339(self.expiration_time)}")
        if self.not_before is not None:
            lines.append(f"Not Before: {_rfc3339(self.not_before)}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {resource}" for resource in self.resources]
        return "\n".join(lines)

    @classmethod
    def parse(cls, text: str) -> SiweMessage:
        """Parse exactly the EIP-4361 layout: fixed order, one LF between lines, nothing extra."""
        if len(text) > MAX_MESSAGE_CHARS:
            raise _malformed("too long")
        if "\r" in text:
            raise _malformed("lines must end with LF only")
        lines = text.split("\n")
        if len(lines) < 9:
            raise _malformed("too few lines")
        if not lines[0].endswith(_PREAMBLE):
            raise _malformed("first line must be '<domain> wants you to sign in with your Ethereum account:'")
        head = _DOMAIN.fullmatch(lines[0][: -len(_PREAMBLE)])
        if head is None:
            raise _malformed("bad domain")
        address = lines[1]
        if not _ADDRESS.fullmatch(address):
            raise _malformed("second line must be a 0x address")
        if not is_checksum_address(address):
            raise _malformed("address must be EIP-55 checksummed")
        if lines[2] != "":
            raise _malformed("a blank line must follow the address")
        statement: str | None = None
        if lines[3] == "":
            index = 4
        else:
            statement = lines[3]
            if not _STATEMENT.fullmatch(statement) or lines[4] != "":
                raise _malformed("the statement must be one line followed by a blank line")
            index = 5

        def take(prefix: str, *, required: bool = True) -> str | None:
            nonlocal index
            if index < len(lines) and lines[index].startswith(prefix):
                index += 1
                return lines[index - 1][len(prefix) :]
            if required:
                raise _malformed(f"expected '{prefix.strip()}' on line {index + 1}")
            return None

        uri = take("URI: ") or ""
        if not _URI.fullmatch(uri):
            raise _malformed("URI is not an RFC 3986 URI")
        version = take("Version: ")
        if version != "1":
            raise _malformed("Version must be 1")
        chain_raw = take("Chain ID: ") or ""
        if not is_ascii_digits(chain_raw) or len(chain_raw) > 20:
            raise _malformed("Chain ID must be a decimal number")
        nonce = take("Nonce: ") or ""
        if not _NONCE.fullmatch(nonce):
            raise _malformed("Nonce must be at least 8 alphanumeric characters")
        issued_at = parse_datetime(take("Issued At: ") or "", "Issued At")
        expiration = take("Expiration Time: ", required=False)
        not_before = take("Not Before: ", required=False)
        request_id = take("Request ID: ", required=False)
        if request_id is not None and not _REQUEST_ID.fullmatch(request_id):
            raise _malformed("Request ID has characters outside pchar")
        resources: list[str] = []
        if take("Resources:", required=False) is not None:
            if lines[index - 1] != "Resources:":
                raise _malformed("'Resources:' stands alone on its line")
            while index < len(lines) and lines[index].startswith("- "):
                resource = lines[index][2:]
                if not _URI.fullmatch(resource):
                    raise _malformed("a resource is not a URI")
                resources.append(resource)
                index += 1
        if index != len(lines):
            raise _malformed(f"unexpected content on line {index + 1}")
        return cls(
            domain=head.group("domain"),
            scheme=head.group("scheme"),
            address=address,
            statement=statement,
            uri=uri,
            version=version,
            chain_id=int(chain_raw),
            nonce=nonce,
            issued_at=issued_at,
            expiration_time=parse_datetime(expiration, "Expiration Time") if expiration is not None else None,
            not_before=parse_datetime(not_before, "Not Before") if not_before is not None else None,
            request_id=request_id,
            resources=tuple(resources),
        )


def personal_sign_hash(message: str) -> bytes:
    """The EIP-191 (version 0x45) hash a wallet signs for `personal_sign`: what EIP-1271 is asked about."""
    return bytes(defunct_hash_message(text=message))


class ContractWallets:
    """Asks a wallet contract whether it signed (EIP-1271), over any EVM JSON-RPC endpoint."""

    def __init__(self, rpc: JsonRpc) -> None:
        self.rpc = rpc

    async def signed(self, address: str, message_hash: bytes, signature: bytes) -> bool:
        """True when `address` holds code and its `isValidSignature` returns the magic value."""
        try:
            code = await self.rpc.call("eth_getCode", [address, "latest"])
            if not isinstance(code, str) or code in ("", "0x", "0x0"):
                return False  # no code: an EOA, and its signature did not recover to it
            data = EIP1271_MAGIC + abi_encode(["bytes32", "bytes"], [message_hash, signature])
            answer = await self.rpc.call("eth_call", [{"to": address, "data": "0x" + data.hex()}, "latest"])
        except RpcCallError:
            return False  # a revert (no such function, a failed check) is a refusal, not an outage
        except HistoryError:
            raise SiweError(
                503, "chain_unavailable", "the chain could not be asked about this contract wallet's signature"
            ) from None
        # A bytes4 return is ABI-encoded left-aligned in one 32-byte word.
        return isinstance(answer, str) and answer[:10].lower() == "0x" + EIP1271_MAGIC.hex()


def signature_bytes(signature: str) -> bytes:
    """A signature's bytes: 0x-prefixed hex, at most MAX_SIGNATURE_BYTES."""
    if len(signature) > 2 + 2 * MAX_SIGNATURE_BYTES or not _ANY_SIGNATURE.fullmatch(signature):
        raise SiweError(
            401, "siwe_bad_signature", f"signature must be 0x-prefixed hex of at most {MAX_SIGNATURE_BYTES} bytes"
        )
    return bytes.fromhex(signature[2:])


def recover_signer(message: str, signature: str) -> str:
    if not _SIGNATURE.fullmatch(signature):
        raise SiweError(401, "siwe_bad_signature", "signature must be 0x followed by 65 bytes of hex")
    try:
        recovered: str = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception:  # noqa: BLE001 - any malformed signature is just a bad signature
        raise SiweError(401, "siwe_bad_signature", "the signature does not recover to an address") from None
    return recovered


@dataclass(frozen=True)
class SiwePolicy:
    """What this service accepts: its domain, its URI origin, its chain, and how much clock skew."""

    domain: str
    uri: str
    chain_id: int | None
    clock_skew_s: int = 60

    def check(self, message: SiweMessage, now: float) -> None:
        """Every check but the nonce (which is spent last, only when all else passed)."""
        if message.domain.lower() != self.domain.lower():
            raise SiweError(401, "siwe_domain_mismatch", f"the message is for {message.domain!r}, not this service")
        expected, got = urlsplit(self.uri), urlsplit(message.uri)
        if (got.scheme.lower(), got.netloc.lower()) != (expected.scheme.lower(), expected.netloc.lower()):
            raise SiweError(401, "siwe_uri_mismatch", "the message's URI is not on this service's origin")
        if message.scheme is not None and message.scheme.lower() != expected.scheme.lower():
            raise SiweError(401, "siwe_domain_mismatch", "the message's scheme is not this service's")
        if self.chain_id is not None and message.chain_id != self.chain_id:
            raise SiweError(401, "siwe_chain_mismatch", f"the message is for chain {message.chain_id}")
        skew = self.clock_skew_s
        if message.issued_at.timestamp() > now + skew:
            raise SiweError(401, "siwe_not_yet_valid", "Issued At is in the future")
        if message.expiration_time is not None and message.expiration_time.timestamp() <= now - skew:
            raise SiweError(401, "siwe_expired", "the message has expired")
        if message.not_before is not None and message.not_before.timestamp() > now + skew:
            raise SiweError(401, "siwe_not_yet_valid", "Not Before is in the future")


@dataclass(frozen=True)
class Session:
    token: str
    address: str
    expires_at: float


class SiweService:
    """Nonces (single use, short-lived, a bounded try budget) and the sessions a verified message opens.

    A nonce allows `max_failures` failed verifications, then it is spent (429
    `siwe_nonce_exhausted`: ask for a new one). A contract-wallet check is charged before the
    chain is asked, so one nonce buys at most `max_failures` `eth_getCode`/`eth_call` pairs.
    """

    def __init__(
        self,
        redis: Redis,
        policy: SiwePolicy,
        *,
        nonce_ttl_s: int,
        session_ttl_s: int,
        contract_wallets: ContractWallets | None = None,
        max_failures: int = 5,
    ) -> None:
        self.redis = redis
        self.policy = policy
        self.nonce_ttl_s = nonce_ttl_s
        self.session_ttl_s = session_ttl_s
        self.contract_wallets = contract_wallets
        self.max_failures = max_failures
        self._nonce = lua.register(redis, "siwe_nonce")

    async def new_nonce(self) -> tuple[str, float]:
        nonce = secrets.token_hex(12)
        await self.redis.set(siwe_nonce_key(nonce), "0", ex=self.nonce_ttl_s)  # failures so far
        return nonce, time.time() + self.nonce_ttl_s

    def _exhausted(self) -> SiweError:
        return SiweError(
            429,
            "siwe_nonce_exhausted",
            f"this nonce allowed {self.max_failures} failed sign-ins and is spent; request a new nonce",
        )

    async def charge(self, nonce: str) -> int:
        """Count one failed (or about to be tried) verification: the failures so far, -1 for an unknown nonce."""
        result = int(await self._nonce(keys=[siwe_nonce_key(nonce)], args=["charge", self.max_failures, 0]))
        if result == -2:
            raise self._exhausted()
        return result

    async def spend(self, nonce: str, *, precharged: bool) -> None:
        """Use the nonce up for a sign-in that passed every check (atomically: one of two racers wins)."""
        args: list[str | int] = ["spend", self.max_failures, int(precharged)]
        result = int(await self._nonce(keys=[siwe_nonce_key(nonce)], args=args))
        if result == -2:
            raise self._exhausted()
        if result == -1:
            raise SiweError(401, "siwe_nonce_invalid", "the nonce is unknown, expired or already used")

    async def _contract_signed(self, message: SiweMessage, text: str, raw: bytes) -> bool:
        """Ask the wallet contract (EIP-1271), charged to the nonce first; only a live nonce earns the question."""
        if self.contract_wallets is None:
            return False
        if await self.charge(message.nonce) < 0:
            return False
        return await self.contract_wallets.signed(message.address, personal_sign_hash(text), raw)

    async def sign_in(self, text: str, signature: str) -> Session:
        message = SiweMessage.parse(text)
        now = time.time()
        precharged = False
        try:
            self.policy.check(message, now)
            raw = signature_bytes(signature)
            recovered: str | None = None
            if len(raw) == 65:
                try:
                    recovered = recover_signer(text, signature)
                except SiweError:
                    recovered = None  # not an EOA signature; a contract wallet may still accept it
            if recovered != message.address:
                precharged = self.contract_wallets is not None
                if not await self._contract_signed(message, text, raw):
                    raise SiweError(401, "siwe_bad_signature", "the message was not signed by its address")
        except SiweError as refusal:
            if refusal.status == 401 and not precharged:
                await self.charge(message.nonce)  # a failed verification costs the nonce one try
            raise
        await self.spend(message.nonce, precharged=precharged)
        expires_at = now + self.session_ttl_s
        if message.expiration_time is not None:
            expires_at = min(expires_at, message.expiration_time.timestamp())
        token = f"{SESSION_PREFIX}{secrets.token_urlsafe(32)}"
        record = {
            "key_id": "s_" + secrets.token_hex(6),
            "tenant": wallet_tenant(message.address),
            "scopes": list(SCOPES),
            "collections": None,
            "address": message.address,
            "kind": "siwe",
            "expires_at": expires_at,
        }
        ttl_ms = max(1000, int((expires_at - now) * 1000))
        await self.redis.set(session_key(digest(token)), json.dumps(record), px=ttl_ms)
        return Session(token=token, address=message.address, expires_at=expires_at)
