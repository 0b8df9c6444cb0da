"""A content-addressed pin store on local disk, the stand-in for Kubo during development."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
from pathlib import Path

from ipfs.cid import cid_for_bytes, encode_cid, parse_cid
from ipfs.pinning import CIDMismatch, PinnedObject, PinningError

__all__ = ["LocalStore"]

_META_SUFFIX = ".json"
_MAX_CONTENT_TYPE_CHARS = 255


class LocalStore:
    """Pins bytes as files named by their CIDv1, under `root/<last two CID chars>/`.

    Each object is a data file `<cid>` and a sidecar `<cid>.json` holding its content
    type. Both are written to a temporary file (whose name starts with a dot, so it can
    never be taken for a CID), fsynced, and renamed into place; the sidecar lands first,
    so a visible data file always has its sidecar. Reads re-hash the bytes, so a file
    damaged on disk is reported as CIDMismatch instead of being served.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    async def pin(self, data: bytes, *, content_type: str, name: str | None = None) -> str:
        """Store `data` and return its CIDv1; the same bytes again are a no-op."""
        return await asyncio.to_thread(self.put_sync, data, content_type=content_type, name=name)

    async def get(self, cid: str) -> PinnedObject | None:
        """Return the object pinned under `cid`, or None; raises InvalidCID for a bad CID."""
        return await asyncio.to_thread(self.get_sync, cid)

    def put_sync(self, data: bytes, *, content_type: str, name: str | None = None) -> str:
        """Blocking form of `pin`, for the CLI."""
        del name  # the Pinner protocol carries it for remote services; files need none
        if not content_type or len(content_type) > _MAX_CONTENT_TYPE_CHARS:
            raise ValueError("content_type must be 1 to 255 characters")
        cid = cid_for_bytes(data)
        shard = self._shard(cid)
        data_path = shard / cid
        if data_path.exists():
            # Same CID means same bytes; the first pin's content type stays.
            return cid
        if not shard.is_dir():
            shard.mkdir(parents=True, exist_ok=True)
            _fsync_dir(self.root)
        sidecar = json.dumps({"content_type": content_type}, sort_keys=True).encode()
        _write_atomic(shard / (cid + _META_SUFFIX), sidecar)
        _write_atomic(data_path, data)
        return cid

    def get_sync(self, cid: str) -> PinnedObject | None:
        """Blocking form of `get`, for the CLI."""
        version, codec, digest = parse_cid(cid)
        # Re-encoding yields only base32/base58 characters, so the name cannot escape root.
        canonical = encode_cid(version, codec, digest)
        shard = self._shard(canonical)
        try:
            data = (shard / canonical).read_bytes()
        except FileNotFoundError:
            return None
        try:
            meta = json.loads((shard / (canonical + _META_SUFFIX)).read_bytes())
            content_type = meta["content_type"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PinningError(f"content type of {canonical} is missing or unreadable") from exc
        actual = cid_for_bytes(data, version=version)
        if actual != canonical:
            raise CIDMismatch(canonical, actual)
        return PinnedObject(cid=canonical, data=data, content_type=str(content_type))

    def _shard(self, cid: str) -> Path:
        # The tail of a CID is uniformly distributed; the head is a fixed prefix ("bafk…").
        return self.root / cid[-2:]


def _write_atomic(path: Path, content: bytes) -> None:
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as temp_file:
            # mkstemp creates 0600; pinned content is public by definition.
            os.fchmod(temp_file.fileno(), 0o644)
            temp_file.write(content)
            temp_file.flush()
            os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    # Without this the rename itself may not survive a power loss.
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
