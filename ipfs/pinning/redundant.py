"""Several pinners behind one Pinner: redundancy with an all/any policy, and building them from config."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ipfs.cid import cid_for_bytes, parse_cid
from ipfs.pinning import CIDMismatch, PinnedObject, Pinner, PinningError, WaitPolicy
from ipfs.pinning.kubo import KuboPinner
from ipfs.pinning.pinata import PINATA_API_URL, PINATA_UPLOADS_URL, PinataApi, PinataPinner
from ipfs.pinning.pinning_service import PinningServicePinner

__all__ = [
    "PinnerConfig",
    "PinnerKind",
    "RedundancyPolicy",
    "RedundantPinner",
    "aclose_pinner",
    "build_pinner",
]

log = logging.getLogger("personamint.pinning")

RedundancyPolicy = Literal["all", "any"]
PinnerKind = Literal["kubo", "pinning_service", "pinata"]


class RedundantPinner:
    """Pins on every member at once.

    `required` members (the service's own store, which backs its gateway) must always
    succeed. Over `members` the policy decides: "all" needs every one, "any" returns at
    the first success and lets the rest finish in the background (`aclose` awaits them).
    A CIDMismatch fails the pin under either policy: a service that builds another DAG is
    misconfigured, and outvoting it would hide that until its copy is the one asked for.
    """

    def __init__(
        self,
        members: Sequence[tuple[str, Pinner]],
        *,
        policy: RedundancyPolicy = "all",
        required: Sequence[tuple[str, Pinner]] = (),
    ) -> None:
        if policy not in ("all", "any"):
            raise ValueError("policy must be 'all' or 'any'")
        if not members and not required:
            raise ValueError("a redundant pinner needs at least one member")
        labels = [label for label, _ in (*required, *members)]
        if len(set(labels)) != len(labels):
            raise ValueError(f"pinner labels must be unique: {labels}")
        self.members = tuple(members)
        self.required = tuple(required)
        self.policy: RedundancyPolicy = policy
        self._background: set[asyncio.Task[str]] = set()

    async def pin(self, data: bytes, *, content_type: str, name: str | None = None) -> str:
        """Pin on the members as the policy asks; returns the CID every successful member agreed on."""
        expected = await asyncio.to_thread(cid_for_bytes, data)
        tasks: dict[asyncio.Task[str], tuple[str, bool]] = {}
        for label, pinner, is_required in self._all_members():
            task = asyncio.create_task(pinner.pin(data, content_type=content_type, name=name), name=f"pin:{label}")
            tasks[task] = (label, is_required)
        failures: list[tuple[str, BaseException]] = []
        optional_ok = 0
        optional_total = len(self.members)
        pending = set(tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    label, is_required = tasks[task]
                    error = task.exception()
                    if error is None and task.result() != expected:
                        error = CIDMismatch(expected, task.result(), service=label)
                    if error is not None:
                        failures.append((label, error))
                        if isinstance(error, CIDMismatch) or is_required or self.policy == "all":
                            raise _combined(failures)
                    elif not is_required:
                        optional_ok += 1
                optional_failed = sum(1 for label, _ in failures if label in self._optional_labels())
                if optional_total and optional_failed == optional_total:
                    raise _combined(failures)
                required_left = any(tasks[task][1] for task in pending)
                if self.policy == "any" and not required_left and (optional_ok or not optional_total):
                    break
        except BaseException:
            for task in pending:
                task.cancel()
            for task in tasks:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved, so asyncio does not log it as lost
            raise
        for task in pending:
            # "any" is satisfied; the others keep going so redundancy still builds up.
            self._background.add(task)
            task.add_done_callback(self._finished_in_background(tasks[task][0], expected))
        return expected

    async def get(self, cid: str) -> PinnedObject | None:
        """The first member (required ones first) that has `cid`; a member's error moves on to the next."""
        parse_cid(cid)
        last_error: PinningError | None = None
        for label, pinner, _ in self._all_members():
            try:
                found = await pinner.get(cid)
            except PinningError as exc:
                log.warning("pinner %s could not read %s: %s", label, cid, exc)
                last_error = exc
                continue
            if found is not None:
                return found
        if last_error is not None:
            raise last_error
        return None

    async def aclose(self) -> None:
        """Let background pins finish (each is bounded by its own timeout), then close every member."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        for _, pinner, _ in self._all_members():
            await aclose_pinner(pinner)

    def _all_members(self) -> list[tuple[str, Pinner, bool]]:
        return [(label, p, True) for label, p in self.required] + [(label, p, False) for label, p in self.members]

    def _optional_labels(self) -> set[str]:
        return {label for label, _ in self.members}

    def _finished_in_background(self, label: str, cid: str) -> Callable[[asyncio.Task[str]], None]:
        def done(task: asyncio.Task[str]) -> None:
            self._background.discard(task)
            if task.cancelled():
                return
            error = task.exception()
            if error is not None:
                log.warning("background pin of %s on %s failed: %s", cid, label, error)
            elif task.result() != cid:
                log.error("background pin of %s on %s produced %s", cid, label, task.result())

        return done


def _combined(failures: list[tuple[str, BaseException]]) -> BaseException:
    """The first failure (a CIDMismatch if there is one), with the others attached as notes."""
    failures = sorted(failures, key=lambda item: not isinstance(item[1], CIDMismatch))
    label, first = failures[0]
    if not isinstance(first, PinningError):
        return first
    for other_label, other in failures[1:]:
        first.add_note(f"also failed on {other_label}: {type(other).__name__}: {other}")
    log.warning("pin failed on %s: %s", label, first)
    return first


@dataclass(frozen=True)
class PinnerConfig:
    """One remote pinner as configured; `token` is the secret each kind needs.

    kubo: `url` is the RPC API; `token` an optional Authorization header value.
    pinning_service: `url` the API endpoint; `token` the access token; `provider_url` a
    Kubo RPC API that receives the bytes first (its node listed in `origins`).
    pinata: `token` the JWT; `url` the API base (legacy) or uploads base (v3).
    """

    kind: PinnerKind
    url: str
    token: str | None = None
    label: str | None = None
    provider_url: str | None = None
    provider_token: str | None = None
    origins: tuple[str, ...] = ()
    gateway_url: str | None = None
    pinata_api: PinataApi = "legacy"

    def __post_init__(self) -> None:
        if self.kind not in ("kubo", "pinning_service", "pinata"):
            raise ValueError(f"unknown pinner kind {self.kind!r}")
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"{self.kind}: url must be http(s)")
        if self.kind in ("pinning_service", "pinata") and not self.token:
            raise ValueError(f"{self.kind}: a token is required")


def build_pinner(
    configs: Sequence[PinnerConfig],
    *,
    local: Pinner | None,
    policy: RedundancyPolicy = "all",
    wait: WaitPolicy | None = None,
) -> Pinner:
    """The pinner a worker uses: `local` alone without remote configs, else local + remotes.

    The local store stays required so the service's own gateway can always serve what a
    token points at; `policy` applies to the remote pinners.
    """
    wait = wait or WaitPolicy()
    members: list[tuple[str, Pinner]] = []
    for index, config in enumerate(configs):
        label = config.label or (config.kind if len(configs) == 1 else f"{config.kind}-{index}")
        members.append((label, _build_one(config, label, wait)))
    if not members:
        if local is None:
            raise ValueError("no pinner configured")
        return local
    required = [("local", local)] if local is not None else []
    return RedundantPinner(members, policy=policy, required=required)


def _build_one(config: PinnerConfig, label: str, wait: WaitPolicy) -> Pinner:
    if config.kind == "kubo":
        return KuboPinner(config.url, policy=wait, authorization=config.token, service=label)
    if config.kind == "pinata":
        assert config.token is not None
        base = config.url.rstrip("/")
        return PinataPinner(
            config.token,
            api=config.pinata_api,
            api_url=base if config.pinata_api == "legacy" else PINATA_API_URL,
            uploads_url=base if config.pinata_api == "v3" else PINATA_UPLOADS_URL,
            gateway_url=config.gateway_url,
            policy=wait,
            service=label,
        )
    assert config.token is not None
    provider = (
        KuboPinner(config.provider_url, policy=wait, authorization=config.provider_token, service=f"{label}-provider")
        if config.provider_url
        else None
    )
    return PinningServicePinner(
        config.url,
        token=config.token,
        policy=wait,
        provider=provider,
        origins=config.origins,
        gateway_url=config.gateway_url,
        service=label,
    )


async def aclose_pinner(pinner: Pinner) -> None:
    """Close a pinner's HTTP clients if it has any (LocalStore has none)."""
    close = getattr(pinner, "aclose", None)
    if close is None:
        return
    try:
        await close()
    except (OSError, RuntimeError, PinningError) as exc:
        # Closing happens at shutdown; a failure there must not hide the reason for it.
        log.warning("closing pinner %s failed: %s", type(pinner).__name__, exc)
