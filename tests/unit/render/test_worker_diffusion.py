"""The worker's diffusion path: settings → loaded tiny model → micro-batched renders with provenance."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from config.clients import Core
from config.settings import PROJECT_ROOT, Settings
from personalization.orchestrator.rule_based import RuleBasedOrchestrator
from personalization.profile import WalletProfile
from processes.pipeline_worker import renderer_from_settings
from tests.support.tiny_diffusion import build_tiny_models


@pytest.fixture
def small_collections(tmp_path: Path) -> Path:
    folder = tmp_path / "collections"
    folder.mkdir()
    text = (PROJECT_ROOT / "collections" / "default.toml").read_text()
    # 64 px keeps the tiny model fast; everything else is the real default DNA.
    text = text.replace("width = 1024", "width = 64").replace("height = 1024", "height = 64")
    (folder / "default.toml").write_text(text)
    return folder


def test_worker_renders_through_the_diffusion_batcher(tmp_path: Path, small_collections: Path) -> None:
    torch.set_num_threads(1)
    tiny = build_tiny_models(tmp_path / "models")
    settings = Settings(  # type: ignore[call-arg]
        renderer="diffusion",
        model_path=tiny.sd15_folder,
        device="cpu",
        render_batch_size=2,
        render_batch_wait_ms=50,
        collections_dir=small_collections,
        redis_url="redis://127.0.0.1:1/0",  # never connected to in this test
        data_dir=tmp_path / "var",
    )
    core = Core.create(settings)
    dna = core.collections["default"]
    profile = WalletProfile.from_dict(
        {
            "chain_id": 1,
            "address": "0x" + "11" * 20,
            "block_number": 10,
            "balance_eth": 1.0,
            "tx_count": 3,
            "is_contract": False,
            "erc20_transfers": 4,
            "erc721_transfers": 0,
            "erc1155_transfers": 0,
            "transfers_in": 2,
            "transfers_out": 2,
            "interactions": 0,
            "distinct_contracts": 1,
            "distinct_counterparties": 2,
            "nfts_held": 0,
            "contracts_deployed": 0,
            "first_active_block": 1,
            "last_active_block": 9,
            "active_blocks": 4,
            "labels": {"defi": 4},
        }
    )
    params = asyncio.run(RuleBasedOrchestrator().choose(profile, dna)).params

    async def run() -> list[tuple[object, dict[str, object]]]:
        renderer = await renderer_from_settings(settings, core.collections)
        try:
            outputs = await asyncio.gather(renderer.render(dna, params, 1), renderer.render(dna, params, 2))
            return [(out.result, dict(out.provenance)) for out in outputs]
        finally:
            await renderer.aclose()

    (first, first_extra), (second, second_extra) = asyncio.run(run())
    for result, extra in ((first, first_extra), (second, second_extra)):
        assert result.png[:8] == b"\x89PNG\r\n\x1a\n"  # type: ignore[attr-defined]
        assert (result.width, result.height) == (64, 64)  # type: ignore[attr-defined]
        assert str(extra["device"]).startswith("cpu")
        assert extra["weights_sha256"]
    assert first.pixel_sha256 != second.pixel_sha256  # type: ignore[attr-defined]
    assert first_extra["batch_size"] == second_extra["batch_size"] == 2
