"""CIDs from chain.ipfs match `ipfs add` (kubo) byte for byte, and the CID parser is strict."""

from __future__ import annotations

import ast
import base64
import hashlib
import re
import time
from functools import cache
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ipfs.cid import (
    CHUNK_SIZE,
    CODEC_DAG_PB,
    CODEC_RAW,
    MAX_LINKS,
    InvalidCID,
    cid_for_bytes,
    encode_cid,
    is_cid,
    iter_blocks,
    parse_cid,
)

_REPO_ROOT = Path(__file__).resolve().parents[3]
_SHARED_VECTORS = _REPO_ROOT.parent / "shared" / "data" / "ipfs_vectors.tsv"
_COMMITTED_VECTORS = _REPO_ROOT / "tests" / "data" / "ipfs_vectors.tsv"
_VECTORS = _SHARED_VECTORS if _SHARED_VECTORS.is_file() else _COMMITTED_VECTORS


class Vector(NamedTuple):
    name: str
    recipe: str
    cid_v1: str
    cid_v0: str


def _load_vectors(path: Path) -> list[Vector]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        name, recipe, cid_v1, cid_v0 = line.split("\t")
        rows.append(Vector(name, recipe, cid_v1, cid_v0))
    return rows


VECTORS = _load_vectors(_VECTORS)


@cache
def _sha_stream_digests(count: int) -> bytes:
    return b"".join(hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(count))


def _sha_stream(length: int) -> bytes:
    # Round up to whole MiB so neighbouring prefixes (N, N+1 bytes) share one cached stream.
    mib = 1 << 20
    return _sha_stream_digests(-(-length // mib) * mib // 32)[:length]


def _bytes_for(vector: Vector) -> bytes:
    """Build the input a vector row describes, without evaluating arbitrary code."""
    if pattern := re.fullmatch(r"pattern_(\d+)(KiB|MiB)", vector.name):
        size = int(pattern[1]) << (10 if pattern[2] == "KiB" else 20)
        return bytes(i % 256 for i in range(size))
    if stream := re.fullmatch(r"sha_(\d+)", vector.name):
        return _sha_stream(int(stream[1]))
    try:
        literal = ast.literal_eval(vector.recipe)
    except (ValueError, SyntaxError):
        literal = None
    if isinstance(literal, bytes):
        return literal
    pytest.fail(f"no recipe for vector {vector.name!r}: {vector.recipe!r}")


def _by_name(name: str) -> Vector:
    return next(vector for vector in VECTORS if vector.name == name)


# --- the vectors --------------------------------------------------------------


def test_vectors_cover_single_chunk_multi_chunk_and_a_second_level() -> None:
    names = {vector.name for vector in VECTORS}
    assert {"empty", "hello", "pattern_1MiB", "sha_45613056", "sha_45613057"} <= names


def test_committed_vectors_match_the_shared_copy() -> None:
    if not _SHARED_VECTORS.is_file():
        pytest.skip("shared/ is not beside this checkout")
    assert _load_vectors(_COMMITTED_VECTORS) == _load_vectors(_SHARED_VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[vector.name for vector in VECTORS])
def test_cid_v1_matches_kubo(vector: Vector) -> None:
    assert cid_for_bytes(_bytes_for(vector), version=1) == vector.cid_v1


@pytest.mark.parametrize("vector", VECTORS, ids=[vector.name for vector in VECTORS])
def test_cid_v0_matches_kubo(vector: Vector) -> None:
    assert cid_for_bytes(_bytes_for(vector), version=0) == vector.cid_v0


@pytest.mark.parametrize("vector", VECTORS, ids=[vector.name for vector in VECTORS])
def test_vector_cids_parse_and_reencode(vector: Vector) -> None:
    v1 = parse_cid(vector.cid_v1)
    v0 = parse_cid(vector.cid_v0)
    assert v1.version == 1
    assert v0 == (0, CODEC_DAG_PB, v0.digest)
    assert encode_cid(*v1) == vector.cid_v1
    assert encode_cid(*v0) == vector.cid_v0


def test_default_version_is_1() -> None:
    assert cid_for_bytes(b"hello world\n") == _by_name("hello").cid_v1


def test_buffer_types_give_the_same_cid() -> None:
    data = _bytes_for(_by_name("pattern_1MiB"))
    expected = _by_name("pattern_1MiB").cid_v1
    padded = bytearray(b"xx" + data + b"yy")
    assert cid_for_bytes(memoryview(data)) == expected
    assert cid_for_bytes(memoryview(padded)[2:-2]) == expected
    assert cid_for_bytes(memoryview(data).cast("I")) == expected  # multi-byte items


def test_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        cid_for_bytes(b"x", version=2)


@pytest.mark.parametrize(("size", "codec"), [(CHUNK_SIZE, CODEC_RAW), (CHUNK_SIZE + 1, CODEC_DAG_PB)])
def test_one_chunk_is_a_raw_leaf_and_one_more_byte_is_a_dag(size: int, codec: int) -> None:
    data = bytes(size)
    parsed = parse_cid(cid_for_bytes(data))
    assert parsed.codec == codec
    assert (parsed.digest == hashlib.sha256(data).digest()) == (codec == CODEC_RAW)


def test_cid_overhead_over_sha256_is_small() -> None:
    data = _bytes_for(_by_name("sha_45613057"))
    start = time.perf_counter()
    hashlib.sha256(data).digest()
    floor = time.perf_counter() - start
    start = time.perf_counter()
    cid_for_bytes(data, version=0)
    elapsed = time.perf_counter() - start
    # Generous against CI noise; a quadratic copy would take seconds here.
    assert elapsed - floor < 0.5


# --- the blocks ---------------------------------------------------------------


def _decode_pb(block: bytes) -> list[tuple[int, int | bytes]]:
    """Decode one protobuf message into (field, value) pairs, in wire order."""
    fields: list[tuple[int, int | bytes]] = []
    pos = 0

    def varint() -> int:
        nonlocal pos
        value = shift = 0
        while True:
            byte = block[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while pos < len(block):
        key = varint()
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            fields.append((field, varint()))
        else:
            assert wire_type == 2
            length = varint()
            fields.append((field, block[pos : pos + length]))
            pos += length
    return fields


class DagNode(NamedTuple):
    links: list[tuple[bytes, int]]  # (binary CID, Tsize)
    filesize: int
    blocksizes: list[int]


def _decode_dag_pb(block: bytes) -> DagNode:
    fields = _decode_pb(block)
    # dag-pb puts every Link before the Data field.
    assert [field for field, _ in fields] == [2] * (len(fields) - 1) + [1]
    links = []
    for _, raw_link in fields[:-1]:
        assert isinstance(raw_link, bytes)
        link = dict(_decode_pb(raw_link))
        assert link[2] == b""
        assert isinstance(link[1], bytes)
        assert isinstance(link[3], int)
        links.append((link[1], link[3]))
    unixfs_raw = fields[-1][1]
    assert isinstance(unixfs_raw, bytes)
    unixfs = _decode_pb(unixfs_raw)
    assert unixfs[0] == (1, 2)  # Type = File
    filesize = next(value for field, value in unixfs if field == 3)
    blocksizes = [value for field, value in unixfs if field == 4]
    assert isinstance(filesize, int)
    return DagNode(links, filesize, [size for size in blocksizes if isinstance(size, int)])


def _cid_bytes(cid: str) -> bytes:
    version, codec, digest = parse_cid(cid)
    if version == 0:
        return b"\x12\x20" + digest
    return bytes((1, codec, 0x12, 0x20)) + digest


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("name", ["empty", "hello", "pattern_1MiB", "sha_45613057"])
def test_blocks_hash_to_their_cids_and_end_with_the_root(name: str, version: int) -> None:
    vector = _by_name(name)
    blocks = list(iter_blocks(_bytes_for(vector), version))
    assert blocks[-1][0] == (vector.cid_v1 if version == 1 else vector.cid_v0)
    for cid, block in blocks:
        assert parse_cid(cid).digest == hashlib.sha256(block).digest()


@pytest.mark.parametrize("version", [0, 1])
def test_balanced_layout_of_175_chunks(version: int) -> None:
    data = _bytes_for(_by_name("sha_45613057"))
    assert -(-len(data) // CHUNK_SIZE) == MAX_LINKS + 1
    blocks = dict(iter_blocks(data, version))
    by_binary = {_cid_bytes(cid): block for cid, block in blocks.items()}
    root_cid = cid_for_bytes(data, version=version)
    root = _decode_dag_pb(blocks[root_cid])
    assert len(blocks) == MAX_LINKS + 1 + 3  # 175 leaves, two level-1 nodes, the root
    assert root.filesize == len(data)
    assert len(root.links) == 2
    full, rest = (_decode_dag_pb(by_binary[cid]) for cid, _ in root.links)
    assert len(full.links) == MAX_LINKS
    assert len(rest.links) == 1
    assert root.blocksizes == [MAX_LINKS * CHUNK_SIZE, 1]
    assert full.blocksizes == [CHUNK_SIZE] * MAX_LINKS
    assert rest.blocksizes == [1]
    # Tsize counts every encoded block below the link, so the root's add up to the DAG.
    total_encoded = sum(len(block) for block in blocks.values())
    assert sum(tsize for _, tsize in root.links) + len(blocks[root_cid]) == total_encoded
    leaf_codec = CODEC_RAW if version == 1 else CODEC_DAG_PB
    for leaf_cid, tsize in full.links:
        assert tsize == len(by_binary[leaf_cid])
        assert (version == 0) or leaf_cid[1] == leaf_codec


def test_v1_multi_chunk_leaves_are_the_raw_chunks() -> None:
    data = _bytes_for(_by_name("pattern_1MiB"))
    blocks = list(iter_blocks(data))
    assert [block for _, block in blocks[:-1]] == [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)]
    assert all(parse_cid(cid).codec == CODEC_RAW for cid, _ in blocks[:-1])


# --- parsing ------------------------------------------------------------------


def _b32(raw: bytes) -> str:
    return "b" + base64.b32encode(raw).decode().rstrip("=").lower()


_DIGEST = hashlib.sha256(b"x").digest()
_GOOD_V1 = _b32(bytes((1, CODEC_RAW, 0x12, 0x20)) + _DIGEST)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Qm",
        "../etc/passwd",
        "bafkrei/../../etc/passwd",
        _GOOD_V1 + "/",
        _GOOD_V1.upper(),  # upper-case base32 is a different multibase ('B')
        _GOOD_V1[:-1],  # truncated digest
        _GOOD_V1 + "a",
        _GOOD_V1[:-1] + "z",  # same bytes, non-zero padding bits
        _b32(bytes((2, CODEC_RAW, 0x12, 0x20)) + _DIGEST),  # version 2
        _b32(bytes((0, CODEC_RAW, 0x12, 0x20)) + _DIGEST),  # version 0 in v1 form
        _b32(bytes((1, CODEC_RAW, 0x13, 0x20)) + _DIGEST),  # sha2-512 code
        _b32(bytes((1, CODEC_RAW, 0x12, 0x1F)) + _DIGEST[:31]),
        _b32(bytes((1, 0xD5, 0x00, 0x12, 0x20)) + _DIGEST),  # non-minimal codec varint
        _b32(b"\x12\x20" + _DIGEST),  # a CIDv0 multihash wrapped in multibase
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5O",  # 'O' is not base58
        "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5",  # too short for v0
        "Qm" + "1" * 44,
        "f01551220" + _DIGEST.hex(),  # base16 multibase: not handled
        "b" + "a" * 200,
    ],
)
def test_bad_cids_are_rejected(text: str) -> None:
    with pytest.raises(InvalidCID):
        parse_cid(text)
    assert not is_cid(text)


def test_invalid_cid_is_a_value_error_with_a_code() -> None:
    assert issubclass(InvalidCID, ValueError)
    assert InvalidCID.code == "invalid_cid"


def test_non_strings_are_not_cids() -> None:
    assert not is_cid(None)
    assert not is_cid(_GOOD_V1.encode())
    with pytest.raises(InvalidCID):
        parse_cid(_GOOD_V1.encode())  # type: ignore[arg-type]


def test_base58btc_cidv1_parses_like_base32() -> None:
    base58 = "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA"
    parsed = parse_cid(base58)
    assert parsed == parse_cid(encode_cid(*parsed))
    assert parsed.version == 1
    assert parsed.codec == CODEC_RAW


def test_encode_cid_refuses_what_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        encode_cid(1, CODEC_RAW, b"short")
    with pytest.raises(ValueError, match="dag-pb"):
        encode_cid(0, CODEC_RAW, _DIGEST)
    with pytest.raises(ValueError, match="version"):
        encode_cid(3, CODEC_RAW, _DIGEST)


# --- properties ---------------------------------------------------------------

_small_inputs = st.binary(max_size=4096)


@given(_small_inputs, st.sampled_from([0, 1]))
def test_parse_round_trips_cid_for_bytes(data: bytes, version: int) -> None:
    cid = cid_for_bytes(data, version=version)
    parsed = parse_cid(cid)
    assert parsed.version == version
    assert parsed.codec == (CODEC_RAW if version == 1 else CODEC_DAG_PB)
    assert len(parsed.digest) == 32
    assert encode_cid(*parsed) == cid
    assert is_cid(cid)


@given(_small_inputs)
def test_one_chunk_v1_is_the_raw_sha256(data: bytes) -> None:
    assert parse_cid(cid_for_bytes(data)) == (
        1,
        CODEC_RAW,
        hashlib.sha256(data).digest(),
    )


@given(_small_inputs, _small_inputs, st.sampled_from([0, 1]))
def test_different_inputs_get_different_cids(a: bytes, b: bytes, version: int) -> None:
    assume(a != b)
    assert cid_for_bytes(a, version=version) != cid_for_bytes(b, version=version)


@given(st.text(max_size=120))
def test_parse_cid_accepts_or_raises_invalid_cid(text: str) -> None:
    try:
        parsed = parse_cid(text)
    except InvalidCID:
        assert not is_cid(text)
    else:
        assert is_cid(text)
        assert len(parsed.digest) == 32


@given(st.binary(min_size=32, max_size=32), st.integers(0, 2**63 - 1))
def test_encode_then_parse_round_trips_any_codec(digest: bytes, codec: int) -> None:
    assert parse_cid(encode_cid(1, codec, digest)) == (1, codec, digest)
