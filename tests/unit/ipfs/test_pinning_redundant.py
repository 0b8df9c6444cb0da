"""RedundantPinner's all/any policies, and build_pinner from config, over in-memory pinners."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ipfs.cid import cid_for_bytes
from ipfs.pinning import (
    CIDMismatch,
    PinnedObject,
    Pinner,
    PinningError,
    PinningUnavailable,
    WaitPolicy,
)
from ipfs.pinning.kubo import KuboPinner
from ipfs.pinning.local import LocalStore
from ipfs.pinning.pinata import PinataPinner
from ipfs.pinning.pinning_service import PinningServicePinner
from ipfs.pinning.redundant import PinnerConfig, RedundantPinner, aclose_pinner, build_pinner

DATA = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
CID = cid_for_bytes(DATA)


class MemoryPinner:
    """A Pinner with scripted delay, failure or a wrong CID."""

    def __init__(self, *, delay: float = 0.0, error: Exception | None = None, wrong_cid: bool = False) -> None:
        self.delay = delay
        self.error = error
        self.wrong_cid = wrong_cid
        self.stored: dict[str, bytes] = {}
        self.cancelled = False
        self.closed = False

    async def pin(self, data: bytes, *, content_type: str, name: str | None = None) -> str:
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        if self.error is not None:
            raise self.error
        cid = cid_for_bytes(data, version=0) if self.wrong_cid else cid_for_bytes(data)
        self.stored[cid] = data
        return cid

    async def get(self, cid: str) -> PinnedObject | None:
        if self.error is not None:
            raise self.error
        data = self.stored.get(cid)
        return PinnedObject(cid, data, "image/png") if data is not None else None

    async def aclose(self) -> None:
        self.closed = True


async def test_all_needs_every_member() -> None:
    a, b = MemoryPinner(), MemoryPinner(delay=0.01)
    pinner = RedundantPinner([("a", a), ("b", b)], policy="all")
    assert isinstance(pinner, Pinner)
    assert await pinner.pin(DATA, content_type="image/png") == CID
    assert CID in a.stored
    assert CID in b.stored


async def test_all_fails_on_the_first_failure_and_cancels_the_rest() -> None:
    slow = MemoryPinner(delay=5)
    pinner = RedundantPinner(
        [("down", MemoryPinner(error=PinningUnavailable("down: gone"))), ("slow", slow)], policy="all"
    )
    with pytest.raises(PinningUnavailable, match="down: gone"):
        await asyncio.wait_for(pinner.pin(DATA, content_type="image/png"), 2)
    await asyncio.sleep(0)
    assert slow.cancelled


async def test_any_returns_at_the_first_success_and_finishes_the_rest_in_the_background() -> None:
    fast, slow = MemoryPinner(), MemoryPinner(delay=0.2)
    pinner = RedundantPinner([("fast", fast), ("slow", slow)], policy="any")
    assert await asyncio.wait_for(pinner.pin(DATA, content_type="image/png"), 0.15) == CID
    assert CID not in slow.stored
    await pinner.aclose()  # waits for the background pin, then closes members
    assert CID in slow.stored
    assert fast.closed
    assert slow.closed


async def test_any_tolerates_failures_while_one_member_succeeds() -> None:
    pinner = RedundantPinner(
        [("down", MemoryPinner(error=PinningUnavailable("down"))), ("up", MemoryPinner(delay=0.01))], policy="any"
    )
    assert await pinner.pin(DATA, content_type="image/png") == CID


async def test_any_fails_when_every_member_fails() -> None:
    pinner = RedundantPinner(
        [("x", MemoryPinner(error=PinningUnavailable("x down"))), ("y", MemoryPinner(error=PinningError("y down")))],
        policy="any",
    )
    with pytest.raises(PinningError) as caught:
        await pinner.pin(DATA, content_type="image/png")
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "also failed on" in notes


async def test_a_required_member_must_succeed_whatever_the_policy() -> None:
    pinner = RedundantPinner(
        [("remote", MemoryPinner())],
        policy="any",
        required=[("local", MemoryPinner(error=PinningError("disk full")))],
    )
    with pytest.raises(PinningError, match="disk full"):
        await pinner.pin(DATA, content_type="image/png")


async def test_any_waits_for_the_required_member_before_returning() -> None:
    local = MemoryPinner(delay=0.05)
    pinner = RedundantPinner([("remote", MemoryPinner())], policy="any", required=[("local", local)])
    await pinner.pin(DATA, content_type="image/png")
    assert CID in local.stored


async def test_a_cid_mismatch_is_never_outvoted() -> None:
    pinner = RedundantPinner([("bad", MemoryPinner(wrong_cid=True)), ("good", MemoryPinner(delay=0.05))], policy="any")
    with pytest.raises(CIDMismatch) as caught:
        await pinner.pin(DATA, content_type="image/png")
    assert caught.value.expected == CID
    assert caught.value.service == "bad"


async def test_get_falls_through_members_and_errors() -> None:
    has_it = MemoryPinner()
    await has_it.pin(DATA, content_type="image/png")
    pinner = RedundantPinner([("broken", MemoryPinner(error=PinningUnavailable("x"))), ("has", has_it)])
    found = await pinner.get(CID)
    assert found is not None
    assert found.data == DATA
    assert await RedundantPinner([("empty", MemoryPinner())]).get(CID) is None
    with pytest.raises(PinningUnavailable):
        await RedundantPinner([("broken", MemoryPinner(error=PinningUnavailable("x")))]).get(CID)


def test_constructor_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="policy"):
        RedundantPinner([("a", MemoryPinner())], policy="most")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique"):
        RedundantPinner([("a", MemoryPinner()), ("a", MemoryPinner())])
    with pytest.raises(ValueError, match="at least one"):
        RedundantPinner([])


async def test_build_pinner_keeps_the_local_store_required(tmp_path: Path) -> None:
    local = LocalStore(tmp_path)
    assert build_pinner([], local=local) is local
    configs = [
        PinnerConfig(kind="kubo", url="http://127.0.0.1:5001"),
        PinnerConfig(kind="pinning_service", url="https://psa.example/psa", token="t", provider_url="http://k:5001"),
        PinnerConfig(kind="pinata", url="https://api.pinata.cloud", token="jwt", label="pinata-main"),
    ]
    built = build_pinner(configs, local=local, policy="any", wait=WaitPolicy(accept="queued"))
    assert isinstance(built, RedundantPinner)
    assert built.policy == "any"
    assert [label for label, _ in built.required] == ["local"]
    labels = [label for label, _ in built.members]
    assert labels == ["kubo-0", "pinning_service-1", "pinata-main"]
    kinds = [type(p) for _, p in built.members]
    assert kinds == [KuboPinner, PinningServicePinner, PinataPinner]
    psa = built.members[1][1]
    assert isinstance(psa, PinningServicePinner)
    assert isinstance(psa.provider, KuboPinner)
    assert psa.policy.accept == "queued"
    await aclose_pinner(built)
    await aclose_pinner(local)  # no aclose: a no-op


def test_pinner_config_is_validated() -> None:
    with pytest.raises(ValueError, match="token is required"):
        PinnerConfig(kind="pinata", url="https://api.pinata.cloud")
    with pytest.raises(ValueError, match="http"):
        PinnerConfig(kind="kubo", url="ftp://x")
    with pytest.raises(ValueError, match="unknown pinner kind"):
        PinnerConfig(kind="s3", url="https://x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no pinner"):
        build_pinner([], local=None)
