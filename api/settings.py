"""The service's one settings object: environment variables (PERSONAMINT_*), validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Persona Mint configuration; every field can be set as PERSONAMINT_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="PERSONAMINT_", extra="ignore")

    env: Literal["local", "production"] = Field("local", description="local starts missing parts itself.")
    data_dir: Path = Field(PROJECT_ROOT / "var", description="Where local state lives (IPFS store, chain).")
    collections_dir: Path = Field(PROJECT_ROOT / "collections", description="Collection TOML files.")
    registry_files: list[Path] = Field(default_factory=list, description="Extra known-contract files.")

    host: str = Field("127.0.0.1", description="HTTP bind address.")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port (0 picks a free one).")
    public_url: str | None = Field(None, description="Base URL callers reach the service at.")
    max_body_bytes: int = Field(16_384, ge=256, description="Largest accepted request body.")

    redis_url: str | None = Field(None, description="Redis URL; unset in local mode starts redis-server.")
    rpc_url: str | None = Field(None, description="EVM JSON-RPC URL; unset in local mode starts anvil.")
    chain_id: int | None = Field(None, description="Expected chain id; start-up fails on a mismatch.")
    contract_address: str | None = Field(None, description="PersonaMint contract; local mode deploys one.")
    signer_key: SecretStr | None = Field(None, description="Hot key holding MINTER_ROLE (hex).")
    confirmations: int = Field(1, ge=1, le=64, description="Blocks a mint must be buried under.")

    pipeline_concurrency: int = Field(4, ge=1, le=256, description="Pipeline jobs per worker process.")
    mint_concurrency: int = Field(64, ge=1, le=4096, description="Mint jobs the minter holds at once.")
    job_timeout_s: int = Field(600, ge=1, description="A stage run longer than this is retried.")
    job_heartbeat_s: int = Field(30, ge=1, description="A job silent this long is presumed dead.")
    job_retries: int = Field(20, ge=1, description="Attempts before a job ends failed.")
    sweep_s: float = Field(10.0, gt=0, description="How often workers look for lost jobs.")
    lease_ttl_s: float = Field(10.0, gt=1, description="Minter lease lifetime; renewed at a third of it.")

    history_max_depth: int = Field(2_000_000, ge=1, description="Blocks of history read per wallet.")
    history_window: int = Field(10_000, ge=1, description="Initial eth_getLogs block window.")

    @field_validator("contract_address")
    @classmethod
    def _checksum(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from eth_utils import is_address, to_checksum_address

        if not is_address(value):
            raise ValueError("PERSONAMINT_CONTRACT_ADDRESS is not a valid address")
        return to_checksum_address(value)

    @model_validator(mode="after")
    def _production_needs_everything(self) -> Settings:
        if self.env == "production":
            missing = [
                name
                for name in ("redis_url", "rpc_url", "contract_address", "signer_key", "chain_id")
                if getattr(self, name) is None
            ]
            if missing:
                names = ", ".join("PERSONAMINT_" + n.upper() for n in missing)
                raise ValueError(f"production mode needs {names}")
        return self

    @property
    def ipfs_dir(self) -> Path:
        return self.data_dir / "ipfs"
