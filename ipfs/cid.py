"""IPFS CIDs computed exactly as `ipfs add` (kubo defaults) computes them, in pure Python."""

from __future__ import annotations

import base64
import hashlib
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from chain.errors import ChainError

__all__ = [
    "CHUNK_SIZE",
    "CODEC_DAG_PB",
    "CODEC_RAW",
    "MAX_LINKS",
    "InvalidCID",
    "ParsedCID",
    "cid_for_bytes",
    "encode_cid",
    "is_cid",
    "iter_blocks",
    "parse_cid",
]

# kubo's defaults: `--chunker=size-262144`, balanced layout, 174 links per node
# (the most that keeps an internal node under 8 KiB with CIDv0 links).
CHUNK_SIZE = 262_144
MAX_LINKS = 174

CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
_SHA2_256 = 0x12
_DIGEST_SIZE = 32
_MULTIHASH_PREFIX = bytes((_SHA2_256, _DIGEST_SIZE))
_V1_RAW_PREFIX = bytes((1, CODEC_RAW)) + _MULTIHASH_PREFIX
_V1_DAG_PB_PREFIX = bytes((1, CODEC_DAG_PB)) + _MULTIHASH_PREFIX

_UNIXFS_TYPE_FILE = 2
_BASE32_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")
_BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_BASE58_INDEX = {char: index for index, char in enumerate(_BASE58_ALPHABET)}
# The longest sha2-256 CIDv1 (a 9-byte codec varint) is 72 characters; the cap
# stops a hostile string from costing a quadratic base58 conversion.
_MAX_CID_CHARS = 100


class InvalidCID(ChainError, ValueError):
    """A string that is not a CID this service can handle (sha2-256, v0 or v1)."""

    code: ClassVar[str] = "invalid_cid"


class ParsedCID(NamedTuple):
    """The parts of a CID: version, multicodec and the sha2-256 digest."""

    version: int
    codec: int
    digest: bytes


@dataclass(frozen=True, slots=True)
class _Link:
    """What a parent needs to know about a child block to link to it."""

    cid: bytes
    tsize: int  # encoded size of the child's whole subtree, as dag-pb Tsize wants
    file_size: int  # bytes of file content under the child, for UnixFS blocksizes


def cid_for_bytes(data: bytes | memoryview, *, version: int = 1) -> str:
    """Return the root CID `ipfs add [--cid-version=1]` would print for `data`."""
    # _build yields the root last; keep only that.
    ((root, _),) = deque(_build(_as_bytes_view(data), version, with_leaf_blocks=False), maxlen=1)
    return _cid_to_str(root.cid)


def iter_blocks(data: bytes | memoryview, version: int = 1) -> Iterator[tuple[str, bytes]]:
    """Yield (cid, block) for every block of the DAG, children before parents; the root is last."""
    for link, block in _build(_as_bytes_view(data), version, with_leaf_blocks=True):
        assert block is not None
        yield _cid_to_str(link.cid), block


def parse_cid(cid: str) -> ParsedCID:
    """Decode a sha2-256 CID string (v0 "Qm…", v1 base32 "b…" or base58btc "z…")."""
    if not isinstance(cid, str):
        raise InvalidCID(f"a CID is a string, not {type(cid).__name__}")
    if not cid or len(cid) > _MAX_CID_CHARS:
        raise InvalidCID("a CID must be 1 to 100 characters")
    if len(cid) == 46 and cid.startswith("Qm"):
        raw = _base58_decode(cid)
        if len(raw) != 34 or raw[:2] != _MULTIHASH_PREFIX:
            raise InvalidCID("a CIDv0 must be a sha2-256 multihash")
        return ParsedCID(0, CODEC_DAG_PB, raw[2:])
    prefix, body = cid[0], cid[1:]
    if prefix == "b":
        raw = _base32_decode(body)
    elif prefix == "z":
        raw = _base58_decode(body)
    else:
        raise InvalidCID(f"unsupported multibase prefix {prefix!r}")
    return _parse_binary_v1(raw)


def is_cid(cid: object) -> bool:
    """Return whether `cid` is a CID string that parse_cid accepts."""
    if not isinstance(cid, str):
        return False
    try:
        parse_cid(cid)
    except InvalidCID:
        return False
    return True


def encode_cid(version: int, codec: int, digest: bytes) -> str:
    """Return the canonical string of a sha2-256 CID: base58btc for v0, base32 lower for v1."""
    if len(digest) != _DIGEST_SIZE:
        raise ValueError("a sha2-256 digest is 32 bytes")
    if version == 0:
        if codec != CODEC_DAG_PB:
            raise ValueError("a CIDv0 is always dag-pb")
        return _base58_encode(_MULTIHASH_PREFIX + digest)
    if version == 1:
        return _cid_to_str(bytes((1,)) + _varint(codec) + _MULTIHASH_PREFIX + digest)
    raise ValueError(f"CID version must be 0 or 1, not {version}")


# --- building the DAG ---------------------------------------------------------


def _as_bytes_view(data: bytes | memoryview) -> memoryview:
    # cast("B") so len() and slices count bytes even for a multi-byte-item view.
    view = memoryview(data)
    return view if view.format == "B" and view.ndim == 1 else view.cast("B")


def _build(data: memoryview, version: int, *, with_leaf_blocks: bool) -> Iterator[tuple[_Link, bytes | None]]:
    """Yield every block in post-order (the root last); leaf blocks only when asked."""
    if version not in (0, 1):
        raise ValueError(f"CID version must be 0 or 1, not {version}")
    leaf_count = max(1, -(-len(data) // CHUNK_SIZE))
    if leaf_count == 1:
        yield _leaf(data, version, with_block=with_leaf_blocks)
        return
    # kubo's balanced builder grows the root one level at a time, only when the
    # current root is full; that is the same as the shallowest tree whose
    # subtrees are filled left to right.
    depth = 1
    while MAX_LINKS**depth < leaf_count:
        depth += 1
    yield from _subtree(data, 0, leaf_count, depth, version, with_leaf_blocks)


def _subtree(
    data: memoryview,
    first_leaf: int,
    leaf_count: int,
    depth: int,
    version: int,
    with_leaf_blocks: bool,
) -> Iterator[tuple[_Link, bytes | None]]:
    """Yield the blocks of the internal node at `depth` whose first leaf is `first_leaf`."""
    span = MAX_LINKS ** (depth - 1)  # leaves under each child
    last_leaf = min(first_leaf + span * MAX_LINKS, leaf_count)
    children: list[_Link] = []
    for child_first in range(first_leaf, last_leaf, span):
        if depth == 1:
            chunk = data[child_first * CHUNK_SIZE : (child_first + 1) * CHUNK_SIZE]
            child = _leaf(chunk, version, with_block=with_leaf_blocks)
            yield child
        else:
            for child in _subtree(data, child_first, leaf_count, depth - 1, version, with_leaf_blocks):
                yield child
            # A subtree yields its own root last, so `child` is now that root.
        children.append(child[0])
    yield _internal(children, version)


def _leaf(chunk: memoryview, version: int, *, with_block: bool) -> tuple[_Link, bytes | None]:
    size = len(chunk)
    if version == 1:
        # --cid-version=1 implies --raw-leaves: the chunk itself is the block.
        digest = hashlib.sha256(chunk).digest()
        return _Link(_V1_RAW_PREFIX + digest, size, size), bytes(chunk) if with_block else None
    # A UnixFS File node carrying the chunk; kubo leaves Data out when it is empty.
    data_field = b"\x12" + _varint(size) if size else b""
    unixfs_len = 2 + len(data_field) + size + 1 + len(_varint(size))
    head = b"\x0a" + _varint(unixfs_len) + b"\x08" + bytes((_UNIXFS_TYPE_FILE,)) + data_field
    tail = b"\x18" + _varint(size)
    # Hashing the pieces in turn avoids copying every 256 KiB chunk.
    hasher = hashlib.sha256(head)
    hasher.update(chunk)
    hasher.update(tail)
    block_size = len(head) + size + len(tail)
    block = b"".join((head, chunk, tail)) if with_block else None
    return _Link(_MULTIHASH_PREFIX + hasher.digest(), block_size, size), block


def _internal(children: list[_Link], version: int) -> tuple[_Link, bytes]:
    file_size = sum(child.file_size for child in children)
    unixfs = bytearray(b"\x08" + bytes((_UNIXFS_TYPE_FILE,)) + b"\x18" + _varint(file_size))
    for child in children:
        unixfs += b"\x20" + _varint(child.file_size)
    block = bytearray()
    # dag-pb's canonical form writes Links (field 2) before Data (field 1).
    for child in children:
        pb_link = (
            b"\x0a"
            + _varint(len(child.cid))
            + child.cid
            + b"\x12\x00"  # kubo always writes Name, even when it is empty
            + b"\x18"
            + _varint(child.tsize)
        )
        block += b"\x12" + _varint(len(pb_link)) + pb_link
    block += b"\x0a" + _varint(len(unixfs)) + unixfs
    encoded = bytes(block)
    digest = hashlib.sha256(encoded).digest()
    cid = (_V1_DAG_PB_PREFIX if version == 1 else _MULTIHASH_PREFIX) + digest
    tsize = len(encoded) + sum(child.tsize for child in children)
    return _Link(cid, tsize, file_size), encoded


# --- encodings ----------------------------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(raw: bytes, pos: int) -> tuple[int, int]:
    value = 0
    for shift_index in range(9):  # multiformats caps varints at 9 bytes
        if pos >= len(raw):
            raise InvalidCID("truncated varint")
        byte = raw[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * shift_index)
        if not byte & 0x80:
            if byte == 0 and shift_index > 0:
                raise InvalidCID("varint is not minimally encoded")
            return value, pos
    raise InvalidCID("varint longer than 9 bytes")


def _parse_binary_v1(raw: bytes) -> ParsedCID:
    if raw[:1] == b"\x12":
        raise InvalidCID("a multibase-encoded CIDv0 is not a valid CID string")
    version, pos = _read_varint(raw, 0)
    if version != 1:
        raise InvalidCID(f"unsupported CID version {version}")
    codec, pos = _read_varint(raw, pos)
    hash_code, pos = _read_varint(raw, pos)
    if hash_code != _SHA2_256:
        raise InvalidCID(f"unsupported multihash 0x{hash_code:x}; only sha2-256 is handled")
    length, pos = _read_varint(raw, pos)
    digest = raw[pos:]
    if length != _DIGEST_SIZE or len(digest) != _DIGEST_SIZE:
        raise InvalidCID("a sha2-256 digest must be 32 bytes")
    return ParsedCID(1, codec, digest)


def _cid_to_str(binary: bytes) -> str:
    if binary[0] == _SHA2_256:  # a bare multihash is a CIDv0
        return _base58_encode(binary)
    return "b" + base64.b32encode(binary).decode("ascii").rstrip("=").lower()


def _base32_decode(body: str) -> bytes:
    if not body or not set(body) <= _BASE32_ALPHABET or len(body) % 8 in (1, 3, 6):
        raise InvalidCID("not base32 (RFC 4648, lower case, unpadded)")
    raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    # Non-zero padding bits would let several strings name one CID.
    if base64.b32encode(raw).decode("ascii").rstrip("=").lower() != body:
        raise InvalidCID("base32 is not canonical")
    return raw


def _base58_encode(raw: bytes) -> str:
    number = int.from_bytes(raw, "big")
    chars: list[str] = []
    while number:
        number, remainder = divmod(number, 58)
        chars.append(_BASE58_ALPHABET[remainder])
    zeros = len(raw) - len(raw.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(chars))


def _base58_decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = _BASE58_INDEX.get(char)
        if index is None:
            raise InvalidCID(f"{char!r} is not a base58btc character")
        number = number * 58 + index
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * zeros + body
