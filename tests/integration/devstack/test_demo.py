"""`personamint demo` in the suite: the same code as `make demo`, on its own fresh stack."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings
from devstack.demo import demo_session
from devstack.seed import ARCHETYPES


def test_demo_mints_six_distinct_tokens_to_six_wallets(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")  # type: ignore[call-arg]
    outcome = demo_session(settings, out_dir=tmp_path / "gallery")

    assert outcome.ok
    assert [m.archetype for m in outcome.mints] == list(ARCHETYPES)
    assert all(m.status == "confirmed" for m in outcome.mints)
    # Owners were read back from the chain inside demo_session; a wrong owner makes ok False.
    assert len({m.wallet for m in outcome.mints}) == 6
    assert len({m.record["token_id"] for m in outcome.mints}) == 6
    assert len({m.record["image_uri"] for m in outcome.mints}) == 6
    personas = [m.record["persona"] for m in outcome.mints]
    assert personas == ["gamer", "trader", "collector", "newcomer", "whale", "builder"]
    styles = [m.record["style"] for m in outcome.mints]
    for field in ("palette", "medium", "motif"):
        assert len({s[field] for s in styles}) == 6, field

    assert outcome.gallery is not None
    page = outcome.gallery.read_text()
    for archetype in ARCHETYPES:
        image = outcome.gallery.parent / f"{archetype}.png"
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f'src="{archetype}.png"' in page
