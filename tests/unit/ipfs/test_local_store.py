"""LocalStore keeps pins content-addressed, written atomically, and safe from bad CIDs."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ipfs import cid as ipfs
from ipfs.cid import InvalidCID, cid_for_bytes
from ipfs.pinning import CIDMismatch, PinnedObject, Pinner, PinningError
from ipfs.pinning.local import LocalStore

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "pins")


def _all_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def _temp_files(root: Path) -> list[Path]:
    return [path for path in _all_files(root) if path.name.startswith(".")]


def test_local_store_is_a_pinner(store: LocalStore) -> None:
    assert isinstance(store, Pinner)


@pytest.mark.asyncio
async def test_round_trip(store: LocalStore) -> None:
    cid = await store.pin(PNG, content_type="image/png", name="token-1.png")
    assert cid == cid_for_bytes(PNG)
    assert await store.get(cid) == PinnedObject(cid=cid, data=PNG, content_type="image/png")


@pytest.mark.asyncio
async def test_files_are_sharded_by_the_cid_tail(store: LocalStore) -> None:
    cid = await store.pin(PNG, content_type="image/png")
    assert (store.root / cid[-2:] / cid).read_bytes() == PNG
    assert {path.name for path in _all_files(store.root)} == {cid, cid + ".json"}


@pytest.mark.asyncio
async def test_content_type_is_preserved(store: LocalStore) -> None:
    metadata = b'{"name": "Persona #1", "image": "ipfs://bafy..."}'
    png_cid = await store.pin(PNG, content_type="image/png")
    json_cid = await store.pin(metadata, content_type="application/json")
    png, meta = await store.get(png_cid), await store.get(json_cid)
    assert png is not None
    assert meta is not None
    assert (png.content_type, meta.content_type) == ("image/png", "application/json")
    assert meta.data == metadata


@pytest.mark.asyncio
async def test_empty_bytes_can_be_pinned(store: LocalStore) -> None:
    cid = await store.pin(b"", content_type="application/octet-stream")
    assert cid == "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    pinned = await store.get(cid)
    assert pinned is not None
    assert pinned.data == b""


@pytest.mark.asyncio
async def test_unknown_cid_is_none(store: LocalStore) -> None:
    assert await store.get(cid_for_bytes(b"never pinned")) is None
    await store.pin(PNG, content_type="image/png")
    # The store holds CIDv1 DAGs only; the v0 CID of the same bytes names another DAG.
    assert await store.get(cid_for_bytes(PNG, version=0)) is None


@pytest.mark.asyncio
async def test_pinning_twice_is_a_no_op(store: LocalStore) -> None:
    first = await store.pin(PNG, content_type="image/png")
    data_path = store.root / first[-2:] / first
    before = data_path.stat()
    second = await store.pin(PNG, content_type="application/octet-stream")
    after = data_path.stat()
    assert second == first
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    pinned = await store.get(first)
    assert pinned is not None
    assert pinned.content_type == "image/png"  # the first pin's type stays
    assert len(_all_files(store.root)) == 2


@pytest.mark.asyncio
async def test_concurrent_pins_of_the_same_bytes(store: LocalStore) -> None:
    cids = await asyncio.gather(*(store.pin(PNG, content_type="image/png") for _ in range(64)))
    assert set(cids) == {cid_for_bytes(PNG)}
    assert _temp_files(store.root) == []
    assert {path.name for path in _all_files(store.root)} == {
        cids[0],
        cids[0] + ".json",
    }
    pinned = await store.get(cids[0])
    assert pinned is not None
    assert pinned.data == PNG


@pytest.mark.asyncio
async def test_concurrent_pins_of_different_bytes(store: LocalStore) -> None:
    payloads = [PNG + i.to_bytes(2, "big") for i in range(40)]
    cids = await asyncio.gather(*(store.pin(p, content_type="image/png") for p in payloads))
    assert cids == [cid_for_bytes(p) for p in payloads]
    for cid, payload in zip(cids, payloads, strict=True):
        pinned = await store.get(cid)
        assert pinned is not None
        assert pinned.data == payload


@pytest.mark.parametrize(
    "cid",
    [
        "../etc/passwd",
        "../../../../etc/passwd",
        "/etc/passwd",
        "bafkrei/../../etc/passwd",
        "",
        "not a cid",
        cid_for_bytes(PNG) + "/..",
        cid_for_bytes(PNG).upper(),
    ],
)
@pytest.mark.asyncio
async def test_bad_cids_are_rejected_before_touching_disk(store: LocalStore, tmp_path: Path, cid: str) -> None:
    (tmp_path / "passwd").write_text("root:x:0:0")
    store.put_sync(PNG, content_type="image/png")
    with pytest.raises(InvalidCID):
        await store.get(cid)
    with pytest.raises(InvalidCID):
        store.get_sync(cid)


def test_sync_api_for_the_cli(store: LocalStore) -> None:
    cid = store.put_sync(PNG, content_type="image/png")
    assert store.put_sync(PNG, content_type="image/png") == cid
    assert store.get_sync(cid) == PinnedObject(cid=cid, data=PNG, content_type="image/png")


@pytest.mark.parametrize("content_type", ["", "x" * 256])
def test_bad_content_type_is_refused(store: LocalStore, content_type: str) -> None:
    with pytest.raises(ValueError, match="content_type"):
        store.put_sync(PNG, content_type=content_type)


def test_corrupted_file_is_reported_not_served(store: LocalStore) -> None:
    cid = store.put_sync(PNG, content_type="image/png")
    (store.root / cid[-2:] / cid).write_bytes(PNG[:-1] + b"\0")
    with pytest.raises(CIDMismatch) as caught:
        store.get_sync(cid)
    assert caught.value.code == "cid_mismatch"
    assert caught.value.expected == cid


def test_missing_sidecar_is_a_pinning_error(store: LocalStore) -> None:
    cid = store.put_sync(PNG, content_type="image/png")
    (store.root / cid[-2:] / (cid + ".json")).unlink()
    with pytest.raises(PinningError, match="content type"):
        store.get_sync(cid)


def test_errors_carry_codes() -> None:
    assert PinningError.code == "pinning_error"
    assert issubclass(CIDMismatch, PinningError)


# --- crashes ------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_failed_write_leaves_nothing_under_the_cid(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    cid = cid_for_bytes(PNG)
    real_fsync, real_replace = os.fsync, os.replace

    # Only the data file fails; the sidecar before it goes through.
    def fsync_failing_on_data(fd: int) -> None:
        if os.fstat(fd).st_size == len(PNG):
            raise OSError("simulated crash mid-write")
        real_fsync(fd)

    def replace_failing_on_data(source: str, destination: str | Path) -> None:
        if Path(destination).name == cid:
            raise OSError("simulated crash mid-write")
        real_replace(source, destination)

    fail_on_data_file = fsync_failing_on_data if failing == "fsync" else replace_failing_on_data
    monkeypatch.setattr(os, failing, fail_on_data_file)
    with pytest.raises(OSError, match="simulated"):
        store.put_sync(PNG, content_type="image/png")
    monkeypatch.undo()

    assert not (store.root / cid[-2:] / cid).exists()
    assert _temp_files(store.root) == []
    assert store.get_sync(cid) is None
    # The next attempt succeeds as if nothing had happened.
    assert store.put_sync(PNG, content_type="image/png") == cid
    assert store.get_sync(cid) is not None


def test_data_is_complete_and_fsynced_before_it_takes_the_cid_name(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def recording_fsync(fd: int) -> None:
        events.append("fsync")
        real_fsync(fd)

    def checking_replace(source: str, destination: str | Path) -> None:
        source_path, destination_path = Path(source), Path(destination)
        assert source_path.parent == destination_path.parent  # same filesystem: atomic rename
        assert source_path.name.startswith(".")
        assert not ipfs.is_cid(source_path.name)
        assert not destination_path.exists()
        if not destination_path.name.endswith(".json"):
            assert source_path.read_bytes() == PNG
        assert events[-1] == "fsync"
        events.append(f"replace {destination_path.name}")
        real_replace(source, destination)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", checking_replace)
    cid = store.put_sync(PNG, content_type="image/png")
    # The sidecar lands first, so a visible data file always has its content type;
    # each rename is followed by a directory fsync so it survives power loss.
    renames = [event for event in events if event.startswith("replace")]
    assert renames == [f"replace {cid}.json", f"replace {cid}"]
    assert events[-1] == "fsync"


def test_leftover_temp_file_from_a_killed_process_is_ignored(store: LocalStore) -> None:
    cid = cid_for_bytes(PNG)
    shard = store.root / cid[-2:]
    shard.mkdir(parents=True)
    (shard / f".{cid}.abc123.tmp").write_bytes(PNG[:100])  # a write cut short by SIGKILL
    assert store.get_sync(cid) is None
    assert store.put_sync(PNG, content_type="image/png") == cid
    pinned = store.get_sync(cid)
    assert pinned is not None
    assert pinned.data == PNG
