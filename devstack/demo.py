"""`personamint demo`: six wallets with six on-chain lives get six different tokens, end to end."""

from __future__ import annotations

import asyncio
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table

from config.settings import Settings
from devstack.anvil import free_port
from devstack.local import LocalStack, ServiceProcesses, deploy_local_contract, new_api_key, service_env
from jobs.model import PROGRESS, TERMINAL, JobStatus

# What a game server would send along for its players: the collection's [style.context] rules
# turn it into style (more complexity and energy, the mage's motif, the guild's seal).
DEMO_CONTEXT: dict[str, dict[str, Any]] = {
    "gamer": {
        "achievements": ["first-blood", "dragon-slayer", "speedrun", "collector", "guild-master"],
        "hours": 500,
        "class": "mage",
        "level": 42,
        "guild": "Dragonfly Guild",
    },
}


@dataclass
class DemoMint:
    archetype: str
    wallet: str
    job_id: str = ""
    status: str = JobStatus.QUEUED
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0
    record: dict[str, Any] = field(default_factory=dict)
    features: dict[str, Any] = field(default_factory=dict)


def _progress_table(mints: list[DemoMint]) -> Table:
    table = Table(title="Persona Mint demo: minting", expand=False)
    table.add_column("archetype")
    table.add_column("wallet")
    table.add_column("progress")
    table.add_column("status")
    table.add_column("s", justify="right")
    for mint in mints:
        done = PROGRESS.index(JobStatus(mint.status)) + 1 if mint.status in PROGRESS else len(PROGRESS)
        colour = (
            "green" if mint.status == JobStatus.CONFIRMED else "red" if mint.status == JobStatus.FAILED else "yellow"
        )
        bar = "█" * done + "░" * (len(PROGRESS) - done)
        elapsed = mint.seconds or time.monotonic() - mint.started
        table.add_row(mint.archetype, mint.wallet[:10] + "…", bar, f"[{colour}]{mint.status}[/]", f"{elapsed:.1f}")
    return table


_FEATURE_NAMES = {
    "balance_eth": "ETH",
    "tx_count": "txs",
    "erc20_transfers": "erc20",
    "erc721_transfers": "erc721",
    "erc1155_transfers": "erc1155",
    "interactions": "calls",
    "nfts_held": "held",
    "contracts_deployed": "deployed",
}


def _drivers(features: dict[str, Any]) -> str:
    parts = []
    for key, short in _FEATURE_NAMES.items():
        value = features.get(key)
        if value:
            parts.append(f"{short} {value:g}" if isinstance(value, float) else f"{short} {value}")
    labels = features.get("labels") or {}
    if labels:
        parts.append("labels " + ",".join(f"{k}:{v}" for k, v in labels.items()))
    return ", ".join(parts) or "no activity"


def _style(style: dict[str, Any]) -> str:
    choices = " · ".join(str(style.get(k)) for k in ("palette", "medium", "motif", "mood"))
    numbers = " ".join(f"{k[:3]}={style.get(k)}" for k in ("complexity", "energy", "symmetry", "grain", "hue_shift"))
    return f"{choices}\n{numbers}"


def _result_table(mints: list[DemoMint]) -> Table:
    table = Table(title="Six wallets, six lives, six tokens", show_lines=True)
    table.add_column("archetype", no_wrap=True)
    table.add_column("wallet", no_wrap=True)
    table.add_column("persona: history that drove the style", ratio=3)
    table.add_column("style chosen", ratio=3)
    table.add_column("token", justify="right", no_wrap=True)
    table.add_column("s", justify="right", no_wrap=True)
    for mint in mints:
        record = mint.record
        table.add_row(
            mint.archetype,
            f"{mint.wallet[:8]}…{mint.wallet[-6:]}",
            f"[b]{record.get('persona')}[/]: {_drivers(mint.features)}",
            _style(record.get("style") or {}),
            f"#{record.get('token_id', '-')}",
            f"{mint.seconds:.1f}",
        )
    return table


def _chain_table(mints: list[DemoMint]) -> Table:
    table = Table(title="On chain and on IPFS")
    table.add_column("archetype", no_wrap=True)
    table.add_column("token", no_wrap=True)
    for column in ("tx", "image CID", "metadata CID"):
        table.add_column(column, overflow="fold")
    for mint in mints:
        record = mint.record
        table.add_row(
            mint.archetype,
            f"#{record.get('token_id', '-')}",
            str(record.get("tx_hash", "-")),
            str(record.get("image_uri", "-")).removeprefix("ipfs://"),
            str(record.get("token_uri", "-")).removeprefix("ipfs://"),
        )
    return table


def _feature_summary(profile: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "balance_eth",
        "tx_count",
        "erc20_transfers",
        "erc721_transfers",
        "erc1155_transfers",
        "interactions",
        "nfts_held",
        "contracts_deployed",
        "labels",
    )
    return {key: profile.get(key) for key in keys}


def write_gallery(
    out_dir: Path, mints: list[DemoMint], images: dict[str, bytes], metadata: dict[str, Any], gateway: str
) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    cards = []
    for mint in mints:
        image_name = f"{mint.archetype}.png"
        (out_dir / image_name).write_bytes(images[mint.archetype])
        meta = metadata[mint.archetype]
        (out_dir / f"{mint.archetype}.json").write_text(json.dumps(meta, indent=2, sort_keys=True))
        traits = "".join(
            f"<li><b>{html.escape(str(a['trait_type']))}</b> {html.escape(str(a['value']))}</li>"
            for a in meta["attributes"]
        )
        provenance = meta["provenance"]
        features = "".join(f"<li>{html.escape(k)}: {html.escape(json.dumps(v))}</li>" for k, v in mint.features.items())
        image_cid = meta["image"].removeprefix("ipfs://")
        token_cid = mint.record["token_uri"].removeprefix("ipfs://")
        cards.append(f"""
<article>
  <img src="{image_name}" alt="{html.escape(mint.archetype)} token">
  <h2>{html.escape(mint.archetype)} · token #{mint.record["token_id"]}</h2>
  <p class="mono">{html.escape(mint.wallet)}</p>
  <h3>History that drove it</h3><ul>{features}</ul>
  <h3>Traits</h3><ul>{traits}</ul>
  <h3>Provenance</h3>
  <ul class="mono">
    <li>seed {provenance["seed"]} · edition {provenance["edition"]} · block {provenance["profile_block"]}</li>
    <li>renderer {html.escape(provenance["renderer"])} {html.escape(provenance["renderer_version"])}</li>
    <li>params sha256 {provenance["params_sha256"][:16]}…</li>
    <li>pixels sha256 {provenance["pixel_sha256"][:16]}…</li>
    <li>tx {html.escape(mint.record["tx_hash"])}</li>
    <li><a href="{gateway}/ipfs/{image_cid}">image {image_cid}</a></li>
    <li><a href="{gateway}/ipfs/{token_cid}">metadata {token_cid}</a></li>
  </ul>
</article>""")
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Persona Mint demo gallery</title>
<style>
body{{font-family:system-ui,sans-serif;background:#111;color:#eee;margin:2rem}}
main{{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:1.5rem}}
article{{background:#1c1c1f;border-radius:12px;padding:1rem}} img{{width:100%;border-radius:8px}}
h2{{margin:.6rem 0 .2rem}} h3{{margin:.6rem 0 .2rem;font-size:.9rem;color:#aaa}}
ul{{margin:0;padding-left:1.1rem;font-size:.85rem}} .mono{{font-family:ui-monospace,monospace;font-size:.75rem;
word-break:break-all}} a{{color:#8ab4f8}}
</style></head><body>
<h1>Persona Mint · six wallets, six lives, six tokens</h1>
<p>Each image was rendered from the wallet's on-chain history, pinned under its IPFS CID and minted to it.</p>
<main>{"".join(cards)}</main></body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page)
    return index


async def _mint_all(
    base_url: str, api_key: str, wallets: dict[str, str], console: Console, timeout_s: float = 180.0
) -> list[DemoMint]:
    mints = [DemoMint(archetype, wallet) for archetype, wallet in wallets.items()]
    headers = {"Authorization": f"Bearer {api_key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        for mint in mints:
            body = {"recipient": mint.wallet, "collection": "default", "context": DEMO_CONTEXT.get(mint.archetype, {})}
            response = await client.post("/v1/mints", json=body, headers={"Idempotency-Key": f"demo-{mint.wallet}"})
            response.raise_for_status()
            mint.job_id = response.json()["id"]
            mint.started = time.monotonic()
        deadline = time.monotonic() + timeout_s
        with Live(_progress_table(mints), console=console, refresh_per_second=8, transient=False) as live:
            while any(m.status not in TERMINAL for m in mints):
                if time.monotonic() > deadline:
                    break
                for mint in mints:
                    if mint.status in TERMINAL:
                        continue
                    record = (await client.get(f"/v1/mints/{mint.job_id}")).json()
                    mint.status, mint.record = record["status"], record
                    if mint.status in TERMINAL:
                        mint.seconds = time.monotonic() - mint.started
                live.update(_progress_table(mints))
                await asyncio.sleep(0.1)
    return mints


@dataclass
class DemoOutcome:
    ok: bool
    mints: list[DemoMint]
    seconds: float
    gallery: Path | None
    contract_address: str
    rpc_url: str


def run_demo(settings: Settings, *, out_dir: Path, serve: bool = False, wallets: str = "all") -> int:
    """The CLI entry: exit code 0 when every wallet got its confirmed token."""
    return 0 if demo_session(settings, out_dir=out_dir, serve=serve, wallets=wallets).ok else 1


def demo_session(
    settings: Settings, *, out_dir: Path, serve: bool = False, wallets: str = "all", verify_owners: bool = True
) -> DemoOutcome:
    from devstack.seed import seed_demo

    # A pipe or CI log gets rich's 80 columns by default: too narrow for hashes.
    console = Console(width=None if Console().is_terminal else 240)
    started = time.monotonic()
    data_dir = settings.data_dir / "demo"
    stack = LocalStack(data_dir, persistent=False)
    try:
        with console.status("starting redis-server and anvil…"):
            redis_url, rpc_url = stack.start()
            address, chain_id = asyncio.run(deploy_local_contract(rpc_url))
        with console.status("seeding six wallets with distinct on-chain lives…"):
            seeded = asyncio.run(seed_demo(rpc_url, registry_path=data_dir / "known_contracts.json"))
        console.print(f"seeded {seeded.tx_count} transactions in {seeded.seconds:.1f}s; contract {address}")
        chosen = seeded.wallets if wallets == "all" else {a: seeded.wallets[a] for a in wallets.split(",")}
        port = settings.port if serve else free_port()
        env = service_env(
            redis_url=redis_url, rpc_url=rpc_url, contract_address=address, chain_id=chain_id, data_dir=data_dir
        )
        with console.status("starting the API, a pipeline worker and the minter…"):
            services = ServiceProcesses(env, port=port, log_dir=data_dir / "logs").start()
        try:
            api_key = asyncio.run(new_api_key(redis_url, "demo"))
            mints = asyncio.run(_mint_all(services.base_url, api_key, chosen, console))
            ok = all(m.status == JobStatus.CONFIRMED for m in mints)
            images, metadata = {}, {}
            with httpx.Client(base_url=services.base_url, headers={"Authorization": f"Bearer {api_key}"}) as client:
                for mint in mints:
                    if mint.status != JobStatus.CONFIRMED:
                        continue
                    meta_cid = mint.record["token_uri"].removeprefix("ipfs://")
                    metadata[mint.archetype] = client.get(f"/ipfs/{meta_cid}").json()
                    image_cid = metadata[mint.archetype]["image"].removeprefix("ipfs://")
                    images[mint.archetype] = client.get(f"/ipfs/{image_cid}").content
            _attach_features(mints, data_dir)
            console.print(_result_table(mints))
            console.print(_chain_table(mints))
            if ok and verify_owners:
                owners = asyncio.run(_owners(rpc_url, address, mints))
                for mint in mints:
                    if owners[mint.archetype] != mint.wallet:
                        console.print(f"[red]{mint.archetype}: token owned by {owners[mint.archetype]}[/]")
                        ok = False
            index = None
            if ok:
                index = write_gallery(out_dir, mints, images, metadata, services.base_url)
                console.print(f"gallery: {index.resolve()}")
            else:
                for mint in mints:
                    if mint.status != JobStatus.CONFIRMED:
                        console.print(f"[red]{mint.archetype} ended {mint.status}: {mint.record.get('error')}[/]")
            console.print(f"demo finished in {time.monotonic() - started:.1f}s")
            if serve:
                console.print(f"service up at {services.base_url} (API key {api_key}); Ctrl-C stops it")
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
            return DemoOutcome(ok, mints, time.monotonic() - started, index, address, rpc_url)
        finally:
            services.stop()
    finally:
        stack.stop()


async def _owners(rpc_url: str, contract_address: str, mints: list[DemoMint]) -> dict[str, str]:
    """Who owns each token according to the chain itself, not the job record."""
    from chain.contract import PersonaMint
    from chain.web3 import connect_web3

    w3 = connect_web3(rpc_url)
    try:
        contract = PersonaMint(w3, contract_address)
        return {m.archetype: await contract.owner_of(int(m.record["token_id"])) for m in mints}
    finally:
        await w3.provider.disconnect()


def _attach_features(mints: list[DemoMint], data_dir: Path) -> None:
    """Read each job's saved profile straight from Redis-backed status: the features that drove the style."""
    del data_dir
    for mint in mints:
        profile = mint.record.get("profile") or {}
        mint.features = _feature_summary(profile) if profile else {}
