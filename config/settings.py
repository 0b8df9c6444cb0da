"""The service's one settings object: environment variables (PERSONAMINT_*), validated at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from eth_utils.address import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ipfs.pinning import WaitPolicy
from ipfs.pinning.redundant import PinnerConfig
from jobs.ids import TENANT_PATTERN

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class PinnerSettings(BaseModel):
    """One remote pinner, an item of the JSON list in PERSONAMINT_PINNERS."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["kubo", "pinning_service", "pinata"] = Field(description="Which protocol the service speaks.")
    url: str = Field(description="Kubo RPC API, Pinning Services API endpoint, or Pinata API base.")
    token: SecretStr | None = Field(None, description="Access token / JWT / Kubo Authorization header value.")
    token_file: Path | None = Field(None, description="File holding the token instead (preferred).")
    label: str | None = Field(None, description="Name used in errors and logs.")
    provider_url: str | None = Field(None, description="Pinning service only: Kubo RPC API that provides the bytes.")
    provider_token: SecretStr | None = Field(None, description="Authorization header value for that Kubo.")
    origins: list[str] = Field(default_factory=list, description="Pinning service only: multiaddrs of the provider.")
    gateway_url: str | None = Field(None, description="Gateway to read pins back through (verified).")
    pinata_api: Literal["legacy", "v3"] = Field("legacy", description="Pinata only: pinFileToIPFS or v3 files.")

    def to_config(self) -> PinnerConfig:
        token = self.token.get_secret_value() if self.token else None
        if self.token_file is not None:
            if token is not None:
                raise ValueError(f"pinner {self.label or self.kind}: give token or token_file, not both")
            token = self.token_file.read_text().strip()
        return PinnerConfig(
            kind=self.kind,
            url=self.url,
            token=token,
            label=self.label,
            provider_url=self.provider_url,
            provider_token=self.provider_token.get_secret_value() if self.provider_token else None,
            origins=tuple(self.origins),
            gateway_url=self.gateway_url,
            pinata_api=self.pinata_api,
        )


class ChainEndpoint(BaseModel):
    """One more chain than PERSONAMINT_RPC_URL's, an item of PERSONAMINT_CHAINS (keyed by chain id)."""

    model_config = ConfigDict(extra="forbid")

    rpc_url: str = Field(description="JSON-RPC URL for collections on this chain whose [chain] has no rpc_urls.")
    contract_address: str | None = Field(
        None, description="Contract for this chain's collections whose [deployment] has no contract_address."
    )
    deploy_block: int = Field(0, ge=0, description="Block that contract was deployed in (event scans).")

    @field_validator("contract_address")
    @classmethod
    def _checksummed(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not is_address(value):
            raise ValueError("contract_address must be a 0x-prefixed 20-byte address")
        return to_checksum_address(value)


class WebhookEvent(BaseModel):
    """How one inbound event type becomes a mint: JSON pointers into the event body."""

    collection: str = Field("default", description="Collection the reward mints in.")
    recipient: str = Field("/data/wallet", description="JSON pointer to the recipient address.")
    context: str | None = Field("/data/context", description="JSON pointer to app context (optional).")


class WebhookSource(BaseModel):
    """An inbound reward webhook sender: its shared secret, tenant and event mapping."""

    secret: SecretStr = Field(description="HMAC-SHA256 shared secret.")
    tenant: str = Field(
        pattern=f"^{TENANT_PATTERN.pattern}$",
        description="Tenant the mints belong to (and whose status webhooks go back): 1-64 of a-z 0-9 . _ -.",
    )
    tolerance_s: int = Field(300, ge=1, description="Largest accepted timestamp age or skew.")
    events: dict[str, WebhookEvent] = Field(default_factory=dict, description="Event type → mint mapping.")
    callback_url: str | None = Field(None, description="Where signed status webhooks go back to.")


WorkerQueue = Literal["pipeline", "preview"]


def _every_worker_queue() -> list[WorkerQueue]:
    return ["pipeline", "preview"]


class Settings(BaseSettings):
    """Persona Mint configuration; every field can be set as PERSONAMINT_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="PERSONAMINT_", extra="ignore")

    env: Literal["local", "production"] = Field("local", description="local starts missing parts itself.")
    data_dir: Path = Field(PROJECT_ROOT / "var", description="Where local state lives (IPFS store, chain).")
    collections_dir: Path = Field(PROJECT_ROOT / "collections", description="Collection TOML files.")
    registry_files: list[Path] = Field(default_factory=list, description="Extra known-contract files.")

    host: str = Field("127.0.0.1", description="HTTP bind address.")
    event_loop: Literal["auto", "asyncio", "uvloop"] = Field(
        "auto", description="The API's event loop: auto takes uvloop (a dependency) when it imports."
    )
    port: int = Field(8000, ge=0, le=65535, description="HTTP port (0 picks a free one).")
    public_url: str | None = Field(None, description="Base URL callers reach the service at.")
    max_body_bytes: int = Field(16_384, ge=256, description="Largest accepted request body.")
    max_header_bytes: int = Field(
        16_384, ge=1024, description="Largest total of a request's header names and values (beyond: 431)."
    )
    max_header_count: int = Field(100, ge=8, description="Most headers one request may carry (beyond: 431).")

    redis_url: str | None = Field(
        None,
        description="Redis URL (redis://, rediss://, unix://, or redis+sentinel://host:26379,…/<service>[/<db>] "
        "for a Sentinel-managed primary); unset in local mode starts redis-server.",
    )
    redis_wait_replicas: int | None = Field(
        None,
        ge=0,
        le=16,
        description="Replicas that must hold an accepted mint and the minter's lease before either counts "
        "(WAIT; unset: 1 for a redis+sentinel:// URL, 0 for one node).",
    )
    redis_wait_timeout_ms: int = Field(
        1000, ge=1, le=60_000, description="How long to WAIT for those replicas (then 503 / the lease is not held)."
    )
    redis_max_connections: int = Field(
        64, ge=4, le=4096, description="Redis connections one process's shared pool may open (then it waits)."
    )
    redis_pool_timeout_s: float = Field(
        2.0, gt=0, description="How long a command waits for a free pooled Redis connection (then 503)."
    )
    sse_streams_per_credential: int = Field(
        16, ge=1, le=1024, description="Concurrent SSE streams one API key or SIWE session may hold open."
    )
    sse_stream_opens_per_min: int = Field(
        120,
        ge=1,
        description="SSE streams one API key or SIWE session may open per minute (a reconnect storm is "
        "refused with 429 stream_rate_limited; follow many jobs through webhooks instead).",
    )
    sse_stream_open_burst: int = Field(32, ge=1, description="SSE streams a credential may open in a burst.")
    sse_keepalive_s: float = Field(
        4.0, gt=0, le=300, description="Seconds between SSE keep-alive comments on an idle stream."
    )
    rpc_url: str | None = Field(None, description="EVM JSON-RPC URL; unset in local mode starts anvil.")
    chain_id: int | None = Field(None, description="Expected chain id; start-up fails on a mismatch.")
    contract_address: str | None = Field(None, description="PersonaMint contract; local mode deploys one.")
    chains: dict[int, ChainEndpoint] = Field(
        default_factory=dict,
        description='More chains, JSON {"8453": {"rpc_url": "…", "contract_address": "0x…"}}: for collections '
        "on another chain than PERSONAMINT_CHAIN_ID's without rpc_urls or contract_address in their file "
        "(local mode sets it when collections name several chains).",
    )
    minter_chain_id: int | None = Field(
        None, description="The chain this minter process mints on; unset: PERSONAMINT_CHAIN_ID's (the default chain)."
    )
    signer_key: SecretStr | None = Field(None, description="Hot key holding MINTER_ROLE (hex); local mode only.")
    signer_keystore: Path | None = Field(None, description="Encrypted JSON keystore of the hot key.")
    signer_keystore_password: SecretStr | None = Field(None, description="Keystore password (or use the file).")
    signer_keystore_password_file: Path | None = Field(None, description="File holding the keystore password.")
    remote_signer_url: str | None = Field(None, description="Web3Signer-style JSON-RPC signer (KMS/HSM behind it).")
    remote_signer_address: str | None = Field(None, description="Address the remote signer signs for.")
    remote_signer_auth: SecretStr | None = Field(None, description="Authorization header for the remote signer.")
    balance_check_s: float = Field(60.0, gt=0, description="How often the signer balance is read.")
    alert_webhook_url: str | None = Field(None, description="Where low-balance alerts are POSTed (signed).")
    alert_webhook_secret: SecretStr | None = Field(None, description="HMAC secret signing those alerts.")
    confirmations: int = Field(1, ge=1, le=64, description="Blocks a mint must be buried under.")

    pipeline_concurrency: int = Field(4, ge=1, le=256, description="Pipeline jobs per worker process.")
    mint_concurrency: int = Field(512, ge=1, le=4096, description="Mint jobs the minter holds at once.")
    job_timeout_s: int = Field(600, ge=1, description="A stage run longer than this is retried.")
    job_heartbeat_s: int = Field(30, ge=1, description="A job silent this long is presumed dead.")
    job_retries: int = Field(20, ge=1, description="Attempts before a job ends failed.")
    job_retention_s: int = Field(
        30 * 24 * 3600, ge=1, description="How long an ended job's record and events are kept (the chain after that)."
    )
    sweep_s: float = Field(10.0, gt=0, description="How often workers look for lost jobs.")
    lease_ttl_s: float = Field(10.0, gt=1, description="Minter lease lifetime; renewed at a third of it.")

    # Minter (issue 4): batching, fees, stalls, signer balance.
    mint_gas_budget: int = Field(15_000_000, ge=300_000, description="Gas per mintBatch transaction.")
    mint_max_batch: int = Field(200, ge=1, le=2000, description="Mints per transaction at most.")
    mint_gas_margin: float = Field(
        1.05,
        ge=1.0,
        le=3.0,
        description="A mintBatch's gas limit is its estimate times this (+20,000). A block admits a transaction "
        "by its limit: a lower margin fits more of them in a block. On PersonaMint v2 a batch's gas only falls "
        "between estimate and inclusion (an entry skipped, a balance slot no longer fresh).",
    )
    mint_poll_s: float = Field(0.1, gt=0, le=30, description="How often the minter reads the head and its nonce.")
    voucher_poll_s: float = Field(
        2.0, gt=0, le=60, description="How often the minter looks on chain for the collectors' voucher mints."
    )
    mint_stall_s: float = Field(30.0, gt=0, description="Nonce stuck this long: replace with a bumped fee.")
    mint_stall_blocks: int = Field(3, ge=1, description="...or stuck for this many new blocks.")
    fee_ceiling_gwei: float | None = Field(500.0, gt=0, description="Highest fee per gas ever signed; unset: none.")
    fee_priority_gwei: float | None = Field(None, ge=0, description="Fixed priority fee; unset asks the node.")
    fee_legacy: bool | None = Field(None, description="Force legacy gasPrice (true) or EIP-1559; unset: detect.")
    fee_max_wait_s: float = Field(300.0, gt=0, description="Unsent mints wait this long above the fee ceiling.")
    rpc_timeout_s: float = Field(10.0, gt=0, le=300, description="Per-request JSON-RPC timeout for the minter.")
    contract_deploy_block: int = Field(0, ge=0, description="Block the contract was deployed in (event scans).")

    pinners: list[PinnerSettings] = Field(default_factory=list, description="Remote pinners (JSON list).")
    pin_policy: Literal["all", "any"] = Field("all", description="Remote pinners that must succeed: all or any.")
    pin_accept: Literal["pinned", "queued"] = Field("pinned", description="Status a mint waits for.")
    pin_timeout_s: float = Field(300.0, gt=0, description="Longest wait from image bytes to that status.")
    pin_retries: int = Field(3, ge=0, le=20, description="Retries of one pinning request after transient errors.")

    history_max_depth: int = Field(2_000_000, ge=1, description="Blocks of history read per wallet.")
    history_window: int = Field(10_000, ge=1, description="Initial eth_getLogs block window.")
    history_concurrency: int = Field(4, ge=1, le=64, description="eth_getLogs requests in flight per wallet.")
    history_indexer: Literal["rpc", "alchemy"] = Field(
        "rpc", description="Transfers from eth_getLogs (rpc) or alchemy_getAssetTransfers at rpc_url."
    )
    history_traces: Literal["auto", "trace_filter", "debug", "off"] = Field(
        "auto",
        description="Factory/CREATE2 deployments via trace_filter or debug_traceTransaction (auto: what the node has).",
    )
    history_cache_ttl_s: float = Field(3600.0, gt=0, description="How long a wallet's history summary is cached.")
    history_ledger_ttl_s: float = Field(
        7 * 86400.0, gt=0, description="How long a wallet's history ledger (what a newer head extends) is kept."
    )
    history_head_ttl_s: float = Field(2.0, ge=0, description="How long a read chain head is reused (~a block).")

    llm_base_url: str | None = Field(None, description="OpenAI-compatible URL; unset means rule-based styling.")
    llm_model: str = Field("gemma-3-270m", description="Model name sent to the LLM endpoint.")
    llm_api_key: SecretStr | None = Field(None, description="LLM endpoint API key (local servers need none).")
    llm_timeout_s: float = Field(20.0, gt=0, le=600, description="Per-request LLM timeout.")
    llm_retries: int = Field(2, ge=0, le=10, description="LLM retries on timeouts, 429 and 5xx.")
    llm_max_tokens: int = Field(256, ge=16, le=4096, description="Most tokens an LLM answer may take.")

    # Renderer (issue 6): procedural on CPU by default; diffusion loads a local model once per worker.
    renderer: Literal["procedural", "diffusion"] = Field("procedural", description="Which renderer workers run.")
    model_path: Path | None = Field(None, description="Diffusers folder or single-file checkpoint (never downloaded).")
    model_config_path: Path | None = Field(None, description="Diffusers config folder a single-file checkpoint needs.")
    model_kind: Literal["auto", "sd", "sd15", "sdxl"] = Field("auto", description="Architecture; auto reads it.")
    model_id: str | None = Field(None, description="Model name recorded in provenance; defaults to the path's name.")
    lora_dir: Path | None = Field(None, description="Where LoRAs named by collections live (<name>.safetensors).")
    device: str = Field("cuda", description="Torch device for diffusion: cuda, cuda:N or cpu.")
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        "auto", description="Diffusion dtype: auto = bf16 (else fp16) on CUDA, fp32 on CPU."
    )
    render_batch_size: int = Field(4, ge=1, le=64, description="Most render jobs sharing one diffusion batch.")
    render_batch_wait_ms: float = Field(
        5.0, ge=0, le=1000, description="Longest a render job waits for company before running alone."
    )
    compile: bool = Field(False, description="torch.compile the UNet and VAE decoder at worker start-up.")
    compile_mode: str = Field("default", description="torch.compile mode (default, max-autotune, ...).")

    # Callers: keys, sessions, limits (issue 7).
    key_rate_per_min: int = Field(6000, ge=1, description="Default requests per minute per API key or session.")
    key_burst: int = Field(200, ge=1, description="Default burst per API key or session.")
    recipient_rate_per_min: int = Field(30, ge=1, description="Mints per minute accepted per recipient wallet.")
    recipient_burst: int = Field(10, ge=1, description="Mints a recipient wallet may get in a burst.")
    wallet_caps: dict[str, int] = Field(
        default_factory=dict,
        description='Per-wallet mint caps by collection id, JSON {"default": 1}; wins over per_wallet_cap in the file.',
    )
    siwe_domain: str | None = Field(None, description="SIWE domain (host[:port]); defaults to public_url's.")
    siwe_uri: str | None = Field(None, description="SIWE URI prefix a message must carry; defaults to public_url.")
    siwe_nonce_ttl_s: int = Field(600, ge=10, description="How long a SIWE nonce may wait to be used.")
    siwe_session_ttl_s: int = Field(86_400, ge=60, description="Longest SIWE session.")
    siwe_clock_skew_s: int = Field(60, ge=0, description="Clock skew allowed on SIWE times.")
    siwe_nonce_rate_per_min: int = Field(30, ge=1, description="SIWE nonces one client address may get per minute.")
    siwe_nonce_burst: int = Field(10, ge=1, description="SIWE nonces one client address may get in a burst.")
    siwe_max_failures: int = Field(5, ge=1, le=100, description="Failed sign-ins one SIWE nonce allows, then spent.")
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Proxy addresses/CIDRs whose X-Forwarded-For names the client (JSON list)."
    )
    ops_token: SecretStr | None = Field(None, description="Bearer token for /ready's details and /metrics.")
    metrics_public: bool = Field(
        False, description="Serve the API's /metrics without the ops token (only on a port the public cannot reach)."
    )
    webhook_sources: dict[str, WebhookSource] = Field(
        default_factory=dict, description="Inbound reward webhook sources, JSON keyed by source name."
    )
    webhook_max_attempts: int = Field(8, ge=1, le=50, description="Outbound delivery tries before a dead letter.")
    webhook_backoff_base_s: float = Field(2.0, gt=0, description="First outbound retry delay (doubles each try).")
    webhook_backoff_max_s: float = Field(3600.0, gt=0, description="Longest outbound retry delay.")
    webhook_timeout_s: float = Field(10.0, gt=0, description="Outbound delivery request timeout.")
    webhook_poll_s: float = Field(0.5, gt=0, description="How often the delivery loop looks for due deliveries.")
    webhook_delivery: bool = Field(True, description="Run the outbound delivery loop in the housekeeper process.")
    webhook_allow_loopback: bool = Field(
        False, description="Let outbound webhooks reach loopback receivers (local mode, tests); never link-local."
    )
    webhook_concurrency: int = Field(64, ge=1, le=4096, description="Outbound deliveries in flight per housekeeper.")
    webhook_tenant_concurrency: int = Field(
        4, ge=1, le=1024, description="Outbound deliveries in flight per tenant (endpoint) per housekeeper."
    )
    preview_cache_ttl_s: int = Field(
        300, ge=1, description="How long a preview or profile answer for one head block is kept (a newer head: anew)."
    )
    preview_concurrency: int = Field(2, ge=1, le=64, description="Previews rendering at once per API process.")
    preview_timeout_s: float = Field(
        60.0, gt=0, description="How long a preview waits for a worker to render it (then 503, retryable)."
    )
    worker_queues: list[WorkerQueue] = Field(
        default_factory=_every_worker_queue,
        min_length=1,
        description='Queues a worker process takes jobs from (JSON list): "pipeline" (mints), "preview".',
    )
    worker_nice: int = Field(
        0,
        ge=0,
        le=19,
        description="CPU niceness a worker process takes at start-up: a preview-only worker at 10 yields to mints.",
    )
    worker_idle_cpu: bool = Field(
        False,
        description="Run the worker under Linux's SCHED_IDLE policy: CPU only when nothing else wants it "
        "(serve's previewer does; ignored where the platform has no SCHED_IDLE).",
    )
    preview_worker_concurrency: int = Field(
        2, ge=1, le=64, description="Previews a worker renders at once, on pm-preview, apart from its mint slots."
    )
    tenant_pipeline_in_flight: int = Field(
        8,
        ge=1,
        le=4096,
        description="A tenant's jobs in the shared pipeline queue at once; the rest wait in its own line.",
    )
    tenant_previews_in_flight: int = Field(
        4, ge=1, description="Previews one tenant may have rendering or queued at once (429 too_many_previews)."
    )
    profile_scans_per_min: int = Field(
        30, ge=1, description="Uncached wallet history scans (profiles, previews) per tenant per minute."
    )
    profile_scan_burst: int = Field(10, ge=1, description="Uncached history scans a tenant may start in a burst.")
    session_mints_per_wallet: int = Field(
        1, ge=0, description="Mints a SIWE session may make per collection (0: none); a collection's [sessions] wins."
    )
    tenant_daily_mint_budget: int = Field(
        0, ge=0, description="Mints an API-key tenant may have accepted per UTC day (0: unlimited)."
    )
    tenant_daily_mint_budgets: dict[str, int] = Field(
        default_factory=dict, description='Per-tenant daily mint budgets, JSON {"acme": 500}; wins over the default.'
    )
    session_daily_mint_budget: int = Field(
        1000, ge=0, description="Mints all SIWE sessions together may have accepted per UTC day (0: unlimited)."
    )
    min_signer_balance_wei: int = Field(
        10**15,
        ge=0,
        description="Signer balance floor: below it the minter reports low balance, alerts fire and /ready fails.",
    )
    signer_low_balance_eth: float | None = Field(
        None, description="Retired: the one threshold is PERSONAMINT_MIN_SIGNER_BALANCE_WEI (set it instead)."
    )
    max_queue_depth: int = Field(10_000, ge=1, description="/ready fails above this many queued jobs.")
    reconcile_s: float = Field(30.0, gt=0, description="How often the housekeeper re-enqueues jobs a queue lost.")
    reconcile_after_s: float = Field(120.0, gt=0, description="Jobs open this long are checked by the reconciler.")
    log_requests: bool = Field(False, description="Log every request (errors and slow requests always are).")
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="Workers and the minter: serve Prometheus /metrics on this port (unset: off)."
    )
    metrics_host: str = Field("127.0.0.1", description="Address the worker's or minter's metrics listener binds.")
    bench_routes: bool = Field(False, description="Expose the hidden /_bench/bare route (benchmarks only).")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        from config.redis_urls import RedisUrlError, check_redis_url

        if value is None:
            return None
        try:
            return check_redis_url(value)
        except RedisUrlError as exc:
            raise ValueError(str(exc)) from None  # the message only: the URL may hold a password

    @property
    def wait_replicas(self) -> int:
        """Replicas a durable write waits for (see `redis_wait_replicas`)."""
        from config.redis_urls import is_sentinel_url

        if self.redis_wait_replicas is not None:
            return self.redis_wait_replicas
        return 1 if self.redis_url is not None and is_sentinel_url(self.redis_url) else 0

    @field_validator("contract_address")
    @classmethod
    def _checksum(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not is_address(value):
            raise ValueError("PERSONAMINT_CONTRACT_ADDRESS is not a valid address")
        return to_checksum_address(value)

    @model_validator(mode="after")
    def _production_needs_everything(self) -> Settings:
        sources = [
            name for name in ("signer_key", "signer_keystore", "remote_signer_url") if getattr(self, name) is not None
        ]
        if len(sources) > 1:
            names = ", ".join("PERSONAMINT_" + n.upper() for n in sources)
            raise ValueError(f"configure one signer, not several: {names}")
        if self.remote_signer_url is not None and self.remote_signer_address is None:
            raise ValueError("PERSONAMINT_REMOTE_SIGNER_URL needs PERSONAMINT_REMOTE_SIGNER_ADDRESS")
        if self.env == "production":
            if self.signer_key is not None:
                raise ValueError(
                    "PERSONAMINT_SIGNER_KEY (a raw key) is refused in production: "
                    "use PERSONAMINT_SIGNER_KEYSTORE or PERSONAMINT_REMOTE_SIGNER_URL"
                )
            missing = [
                name for name in ("redis_url", "rpc_url", "contract_address", "chain_id") if getattr(self, name) is None
            ]
            if not sources:
                missing.append("signer_keystore or remote_signer_url")
            if missing:
                names = ", ".join("PERSONAMINT_" + n.upper() for n in missing)
                raise ValueError(f"production mode needs {names}")
        return self

    def pinner_configs(self) -> list[PinnerConfig]:
        """The remote pinners as the pinning library takes them (token files read now)."""
        return [pinner.to_config() for pinner in self.pinners]

    def pin_wait_policy(self) -> WaitPolicy:
        return WaitPolicy(accept=self.pin_accept, timeout_s=self.pin_timeout_s, retries=self.pin_retries)

    @model_validator(mode="after")
    def _retired(self) -> Settings:
        # The minter's alert once had its own threshold; a deployment that still sets it would
        # otherwise be silently ignored.
        if self.signer_low_balance_eth is not None:
            raise ValueError(
                "PERSONAMINT_SIGNER_LOW_BALANCE_ETH is retired: /ready, the minter's health and the low-balance "
                "alert share PERSONAMINT_MIN_SIGNER_BALANCE_WEI (in wei)"
            )
        return self

    @model_validator(mode="after")
    def _diffusion_needs_a_model(self) -> Settings:
        if self.renderer == "diffusion" and self.model_path is None:
            raise ValueError("PERSONAMINT_RENDERER=diffusion needs PERSONAMINT_MODEL_PATH (a local model)")
        return self

    @property
    def ipfs_dir(self) -> Path:
        return self.data_dir / "ipfs"
