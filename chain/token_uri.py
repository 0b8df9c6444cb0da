"""The metadata URI of a PersonaMint v2 token and the (digest, codec) the contract stores for it.

The contract keeps a CID as its sha2-256 digest and its multicodec (raw or dag-pb) and rebuilds
`ipfs://` + the CIDv1 in base32 in `tokenURI`; these two functions are that mapping, both ways, so
the service sends exactly what `tokenURI` will give back.
"""

from __future__ import annotations

import base64

CODEC_RAW = 0x55
CODEC_DAG_PB = 0x70
_PREFIX = "ipfs://b"
_CID_V1, _SHA2_256, _DIGEST_SIZE = 0x01, 0x12, 0x20


def token_uri(digest: bytes, codec: int) -> str:
    """`ipfs://b…`: the base32 CIDv1 of a sha2-256 `digest` with `codec`, as `tokenURI` returns it."""
    if len(digest) != _DIGEST_SIZE or codec not in (CODEC_RAW, CODEC_DAG_PB):
        raise ValueError("a token's CID is a 32-byte sha2-256 digest with the raw or dag-pb codec")
    binary = bytes((_CID_V1, codec, _SHA2_256, _DIGEST_SIZE)) + digest
    return _PREFIX + base64.b32encode(binary).decode("ascii").lower().rstrip("=")


def uri_parts(uri: str) -> tuple[bytes, int]:
    """(digest, codec) of a token URI; ValueError for anything `tokenURI` could not return as given
    (CIDv0, another base, hash or codec): minting it would record a URI that reads back different."""
    body = uri[len(_PREFIX) :] if uri.startswith(_PREFIX) else ""
    try:
        binary = base64.b32decode(body.upper() + "=" * (-len(body) % 8)) if len(body) == 58 else b""
    except ValueError:
        binary = b""
    if len(binary) != 4 + _DIGEST_SIZE or binary[0] != _CID_V1 or binary[2:4] != bytes((_SHA2_256, _DIGEST_SIZE)):
        raise ValueError(f"not an ipfs:// URI of a base32 sha2-256 CIDv1: {uri[:80]!r}")
    digest, codec = binary[4:], binary[1]
    if token_uri(digest, codec) != uri:
        raise ValueError(f"not the canonical spelling of its CID: {uri[:80]!r}")
    return digest, codec
