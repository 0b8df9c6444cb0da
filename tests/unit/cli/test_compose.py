"""compose.yaml and .env.example describe a deployment the service accepts (no Docker here: the
files are checked against the CLI and the settings, which is what `docker compose up` runs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cli.main import main
from config.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
# Variables compose itself reads, not the service.
COMPOSE_ONLY = {"PERSONAMINT_PUBLISH_PORT", "PERSONAMINT_WORKERS"}


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


def _service_env(name: str) -> dict[str, str]:
    environment = COMPOSE["services"][name].get("environment", {})
    return {k: re.sub(r"\$\{[A-Z_]+:-(.*)\}", r"\1", str(v)) for k, v in environment.items()}


def test_every_service_runs_a_personamint_command() -> None:
    services = COMPOSE["services"]
    assert {"redis", "api", "worker", "previewer", "minter", "housekeeper"} <= set(services)
    for name, service in services.items():
        if name == "redis":
            assert "always" in service["command"]  # appendfsync: nothing acknowledged is lost
            continue
        with pytest.raises(SystemExit) as done:
            main([*service["command"], "--help"])
        assert done.value.code == 0, f"{name}: `personamint {' '.join(service['command'])}` is not a command"
    assert services["worker"]["environment"]["PERSONAMINT_WORKER_QUEUES"] == '["pipeline"]'
    assert services["previewer"]["environment"]["PERSONAMINT_WORKER_QUEUES"] == '["preview"]'
    assert "replicas" not in services["minter"].get("deploy", {})  # one per (chain, signer)


def test_no_two_processes_share_a_disk() -> None:
    for name, service in COMPOSE["services"].items():
        named = [v for v in service.get("volumes", []) if not v.startswith("./")]
        assert name == "redis" or not named, f"{name} mounts a volume: stage outputs must travel through Redis"


@pytest.mark.parametrize("service", ["api", "worker", "previewer", "minter", "housekeeper"])
def test_each_process_settings_validate(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**_env_example(), **_service_env(service)}
    unknown = {
        k for k in env if k not in COMPOSE_ONLY and k.removeprefix("PERSONAMINT_").lower() not in Settings.model_fields
    }
    assert not unknown, f"not settings: {unknown}"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # type: ignore[call-arg]
    assert settings.env == "production"
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.pinners, "a deployment pins where every machine reaches"


def test_every_setting_named_even_in_a_comment_is_one() -> None:
    """The commented-out examples (a minter per chain, PERSONAMINT_CHAINS) name real settings."""
    text = (ROOT / "compose.yaml").read_text() + (ROOT / ".env.example").read_text()
    named = set(re.findall(r"\bPERSONAMINT_[A-Z_]+[A-Z]\b", text)) - COMPOSE_ONLY
    unknown = {name for name in named if name.removeprefix("PERSONAMINT_").lower() not in Settings.model_fields}
    assert not unknown, f"not settings: {unknown}"
    assert {"PERSONAMINT_CHAINS", "PERSONAMINT_MINTER_CHAIN_ID"} <= named


def test_the_commented_chains_example_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    example = next(
        line.lstrip("# ").partition("=")[2]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.lstrip("# ").startswith("PERSONAMINT_CHAINS=")
    )
    monkeypatch.setenv("PERSONAMINT_CHAINS", example.replace("0x...", "0x" + "11" * 20))
    settings = Settings()  # type: ignore[call-arg]
    assert settings.chains[8453].rpc_url.startswith("https://")
