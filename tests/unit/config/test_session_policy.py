"""A collection's `[sessions]` table: what a SIWE session may mint there, strictly validated."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.collections import CollectionConfigError, SessionPolicy, load_collection_config

PROJECT_ROOT = Path(__file__).resolve().parents[3]
DEFAULT = PROJECT_ROOT / "collections" / "default.toml"


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(DEFAULT.read_text() + body)
    return path


def test_no_sessions_table_leaves_the_setting_in_charge(tmp_path: Path) -> None:
    assert load_collection_config(_write(tmp_path, ""), environ={}).sessions == SessionPolicy()


@pytest.mark.parametrize("value", [0, 1, 25])
def test_mints_per_wallet_is_read(tmp_path: Path, value: int) -> None:
    config = load_collection_config(_write(tmp_path, f"\n[sessions]\nmints_per_wallet = {value}\n"), environ={})
    assert config.sessions.mints_per_wallet == value


def test_the_policy_does_not_change_the_dna_hash(tmp_path: Path) -> None:
    plain = load_collection_config(_write(tmp_path, ""), environ={})
    with_policy = load_collection_config(_write(tmp_path, "\n[sessions]\nmints_per_wallet = 3\n"), environ={})
    assert with_policy.style_dna.sha256() == plain.style_dna.sha256()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("mints_per_wallet = -1", r"sessions\.mints_per_wallet must be an integer 0\.\."),
        ("mints_per_wallet = true", r"sessions\.mints_per_wallet must be an integer"),
        ('mints_per_wallet = "1"', r"sessions\.mints_per_wallet must be an integer"),
        ("mints_per_wallet = 1.5", r"sessions\.mints_per_wallet must be an integer"),
        ("mints_per_wallet = 4294967296", r"sessions\.mints_per_wallet must be an integer"),
        ("mint_per_wallet = 1", r"sessions\.mint_per_wallet is not a known field; did you mean sessions\.mints_per"),
    ],
)
def test_bad_values_are_named_with_their_file(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, f"\n[sessions]\n{body}\n")
    with pytest.raises(CollectionConfigError, match=message) as caught:
        load_collection_config(path, environ={})
    assert str(caught.value).startswith(str(path))


def test_sessions_must_be_a_table(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("sessions = 1\n" + DEFAULT.read_text())
    with pytest.raises(CollectionConfigError, match=r"\[sessions\] must be a table"):
        load_collection_config(path, environ={})
