"""The `personamint` command line: run the service's processes, the local stack, and the demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from pydantic import ValidationError

from config.settings import Settings


def load_settings() -> Settings:
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        lines = [f"  PERSONAMINT_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()]
        raise SystemExit("invalid settings:\n" + "\n".join(lines)) from None


def _logging(settings: Settings | None = None) -> None:
    from observability.logging import add_secret, configure

    configure()
    if settings is not None:
        # Whatever else goes wrong, these never reach a log line.
        if settings.signer_key is not None:
            add_secret(settings.signer_key.get_secret_value())
        for source in settings.webhook_sources.values():
            add_secret(source.secret.get_secret_value())
        llm_key = getattr(settings, "llm_api_key", None)
        if llm_key is not None:
            add_secret(llm_key.get_secret_value())


def cmd_api(settings: Settings) -> None:
    import uvicorn

    from api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop=settings.event_loop,
        log_level="warning",
        access_log=False,
        log_config=None,  # keep api.logging's JSON handler
        # Where h11 parses: it buffers at most this much of a request head (beyond: a bare 400), with
        # room for the request line so the header limits' 431 (api.request_limits) answers first.
        h11_max_incomplete_event_size=settings.max_header_bytes + 16_384,
    )


def cmd_worker(settings: Settings) -> None:
    from processes.pipeline_worker import run_worker

    asyncio.run(run_worker(settings))


def cmd_minter(settings: Settings) -> None:
    from processes.chain_minter import run_minter

    asyncio.run(run_minter(settings))


def cmd_housekeeper(settings: Settings) -> None:
    from processes.housekeeper import run_housekeeper

    asyncio.run(run_housekeeper(settings))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    """Production: the API alone. Local: start what is missing, then API, worker, minter and housekeeper."""
    if settings.env == "production":
        cmd_api(settings)
        return
    # SIGTERM (docker stop, systemd, a supervisor) ends serve as Ctrl-C does: every child stops.
    signal.signal(signal.SIGTERM, _interrupt)

    from devstack.local import (
        LocalStack,
        LocalStackError,
        ServiceProcesses,
        deploy_local_chains,
        deploy_local_contract,
        local_chain_ids,
        new_api_key,
        service_env,
    )

    stack = LocalStack(settings.data_dir / "local", persistent=True)
    try:
        redis_url, rpc_url = stack.start(redis_url=settings.redis_url, rpc_url=settings.rpc_url)
        address, chain_id = asyncio.run(deploy_local_contract(rpc_url, settings.data_dir / "local" / "chain.json"))
        # Collections naming other chains (and no RPC URL) get an anvil and a contract each, and a minter.
        extra_ids = local_chain_ids(settings.collections_dir, default_chain_id=chain_id, configured=settings.chains)
        anvils = {extra_id: stack.start_chain(extra_id) for extra_id in extra_ids}
        chains = asyncio.run(deploy_local_chains(anvils, settings.data_dir / "local"))
        configured = {str(key): value.model_dump() for key, value in settings.chains.items()}
        env = service_env(
            redis_url=redis_url,
            rpc_url=rpc_url,
            contract_address=address,
            chain_id=chain_id,
            data_dir=settings.data_dir,
            extra={"PERSONAMINT_CHAINS": json.dumps({**configured, **chains})} if chains else None,
        )
        services = ServiceProcesses(
            env,
            port=settings.port,
            log_dir=settings.data_dir / "local" / "logs",
            workers=args.workers,
            minter_chains=[*settings.chains, *extra_ids],
        ).start()
        api_key = asyncio.run(new_api_key(redis_url, "local"))
        print(f"Persona Mint is up at {services.base_url}  (contract {address} on chain {chain_id})")
        for extra_id, anvil in anvils.items():
            print(f"  and chain {extra_id} at {anvil.url}")
        print(f"API key (tenant 'local'): {api_key}")
        print(f"Logs: {settings.data_dir / 'local' / 'logs'}   Ctrl-C stops everything.")
        try:
            # Restarts a worker, minter or housekeeper that dies; the API dying ends serve (an error).
            services.supervise()
        except KeyboardInterrupt:
            pass
        except LocalStackError as exc:
            raise SystemExit(f"personamint serve: {exc}") from None
        finally:
            services.stop()
    finally:
        stack.stop()


def cmd_demo(settings: Settings, args: argparse.Namespace) -> None:
    from devstack.demo import run_demo

    code = run_demo(settings, out_dir=Path(args.out), serve=args.serve, wallets=args.wallets)
    raise SystemExit(code)


def cmd_llm_server(settings: Settings, args: argparse.Namespace) -> None:
    """Serve Gemma 3 270M over llama.cpp's OpenAI-compatible API on loopback (the `local-llm` extra)."""
    from personalization.orchestrator.local_llm import LocalLlmError, LocalLlmServer, gguf_path

    try:
        model = gguf_path(settings.data_dir / "models")
        server = LocalLlmServer(model, port=args.port or None, n_threads=args.threads).start()
    except LocalLlmError as exc:
        raise SystemExit(str(exc)) from None
    print(f"local LLM at {server.base_url}  (model {server.alias}); Ctrl-C stops it.")
    print(f"  PERSONAMINT_LLM_BASE_URL={server.base_url} PERSONAMINT_LLM_MODEL={server.alias}")
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def cmd_keys(settings: Settings, args: argparse.Namespace) -> None:
    """keys create|list|revoke: API keys are shown once and stored hashed."""
    if settings.redis_url is None:
        raise SystemExit("PERSONAMINT_REDIS_URL is not set")
    asyncio.run(_keys(settings.redis_url, args, allow_loopback=settings.webhook_allow_loopback))


async def _keys(redis_url: str, args: argparse.Namespace, *, allow_loopback: bool = False) -> None:
    import json

    from api.keys import KeyStore
    from config.redis_urls import redis_client
    from jobs.outbox import set_endpoint
    from webhooks.egress import EgressPolicy, EgressRefused

    if getattr(args, "webhook_url", None):
        try:  # before the key is made: a refused URL leaves nothing behind
            EgressPolicy(allow_loopback=allow_loopback).check_url(args.webhook_url)
        except EgressRefused as exc:
            raise SystemExit(str(exc)) from None
    client = redis_client(redis_url)
    store = KeyStore(client)
    try:
        if args.keys_command == "create":
            scopes = tuple(s.strip() for s in args.scopes.split(",") if s.strip())
            collections = tuple(c.strip() for c in args.collections.split(",")) if args.collections else None
            try:
                record, api_key = await store.create(
                    args.tenant,
                    scopes=scopes,
                    collections=collections,
                    name=args.name,
                    rate_per_min=args.rate_per_min,
                    burst=args.burst,
                )
            except ValueError as exc:
                raise SystemExit(str(exc)) from None
            print(f"key id:  {record.key_id}")
            print(f"tenant:  {record.tenant}")
            print(f"scopes:  {','.join(record.scopes)}")
            print(f"collections: {','.join(record.collections) if record.collections is not None else '(all)'}")
            print(f"api key: {api_key}   (shown once; only its hash is stored)")
            if args.webhook_url:
                secret = await set_endpoint(client, args.tenant, args.webhook_url, allow_loopback=allow_loopback)
                print(f"status webhooks for tenant {args.tenant} go to {args.webhook_url}")
                print(f"webhook signing secret: {secret}   (shown once)")
        elif args.keys_command == "list":
            for record in await store.list(args.tenant):
                row = {
                    "key_id": record.key_id,
                    "tenant": record.tenant,
                    "name": record.name,
                    "scopes": list(record.scopes),
                    "collections": list(record.collections) if record.collections is not None else None,
                    "rate_per_min": record.rate_per_min,
                    "created_at": record.created_at,
                    "revoked_at": record.revoked_at,
                }
                print(json.dumps(row))
        elif args.keys_command == "revoke":
            revoked = await store.revoke(args.key_id)
            if revoked is None:
                raise SystemExit(f"no key {args.key_id!r}")
            print(f"revoked {revoked.key_id} (tenant {revoked.tenant})")
    finally:
        await client.aclose()


def cmd_seed(settings: Settings, args: argparse.Namespace) -> None:
    from devstack.seed import describe, seed_demo

    if not settings.rpc_url:
        raise SystemExit("seed needs PERSONAMINT_RPC_URL (a fresh local chain)")
    result = asyncio.run(
        seed_demo(settings.rpc_url, seed=args.seed, registry_path=settings.data_dir / "known_contracts.json")
    )
    print(describe(result))


def cmd_verify(settings: Settings, args: argparse.Namespace) -> None:
    import json

    from config.collections import load_collections
    from pipeline.verify import verify_token

    if not (settings.rpc_url and settings.contract_address):
        raise SystemExit("verify needs PERSONAMINT_RPC_URL and PERSONAMINT_CONTRACT_ADDRESS")
    gateway = args.gateway or settings.public_url or f"http://{settings.host}:{settings.port}"
    report = asyncio.run(
        verify_token(
            rpc_url=settings.rpc_url,
            contract_address=settings.contract_address,
            token_id=args.token_id,
            gateway_url=gateway,
            collections=load_collections(settings.collections_dir),
        )
    )
    print(json.dumps(report.to_dict(), indent=2))
    raise SystemExit(0 if report.ok else 1)


def _cmd_deploy(settings: Settings, args: argparse.Namespace) -> None:
    from cli.deploy import cmd_deploy

    cmd_deploy(settings, args)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="personamint", description="Personalized NFT minting service.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="run the HTTP API only")
    sub.add_parser("worker", help="run a pipeline worker")
    sub.add_parser("minter", help="run the minter (one per chain + signer)")
    sub.add_parser("housekeeper", help="run the reconciler and the webhook deliverer (two named loops)")
    serve = sub.add_parser("serve", help="run the service; in local mode start everything it needs")
    serve.add_argument("--workers", type=int, default=1)
    demo = sub.add_parser("demo", help="seed demo wallets on a fresh local chain and mint for them")
    demo.add_argument("--out", default="demo-out", help="folder for the gallery and images")
    demo.add_argument("--serve", action="store_true", help="keep the service up afterwards")
    demo.add_argument("--wallets", default="all", help="comma-separated archetypes, or 'all'")
    seed = sub.add_parser("seed", help="give six demo wallets distinct histories on a fresh local chain")
    seed.add_argument("--seed", type=int, default=0)
    verify = sub.add_parser("verify", help="re-render a token from its metadata and compare pixels")
    verify.add_argument("token_id", type=int)
    verify.add_argument("--gateway", help="IPFS gateway base URL (default: this service)")
    keys = sub.add_parser("keys", help="manage API keys (create | list | revoke)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key for a tenant (printed once)")
    create.add_argument("tenant")
    create.add_argument("--scopes", default="mint,preview,read", help="comma-separated: mint,preview,read")
    create.add_argument("--collections", default=None, help="comma-separated allow-list (default: all)")
    create.add_argument("--name", default="", help="a label for `keys list`")
    create.add_argument("--rate-per-min", type=int, default=None, help="override the per-key rate limit")
    create.add_argument("--burst", type=int, default=None, help="override the per-key burst")
    create.add_argument("--webhook-url", default=None, help="also set the tenant's status webhook URL")
    listing = keys_sub.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--tenant", default=None)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id; it stops working at once")
    revoke.add_argument("key_id")
    from cli.deploy import add_deploy_parser

    add_deploy_parser(sub)
    llm = sub.add_parser("llm-server", help="serve the local Gemma 3 270M LLM (OpenAI-compatible, loopback)")
    llm.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    llm.add_argument("--threads", type=int, default=None, help="CPU threads for inference")
    args = parser.parse_args(argv)
    _logging()
    settings = load_settings()
    _logging(settings)
    handlers = {
        "api": lambda: cmd_api(settings),
        "worker": lambda: cmd_worker(settings),
        "minter": lambda: cmd_minter(settings),
        "housekeeper": lambda: cmd_housekeeper(settings),
        "serve": lambda: cmd_serve(settings, args),
        "demo": lambda: cmd_demo(settings, args),
        "keys": lambda: cmd_keys(settings, args),
        "llm-server": lambda: cmd_llm_server(settings, args),
        "verify": lambda: cmd_verify(settings, args),
        "seed": lambda: cmd_seed(settings, args),
        "deploy": lambda: _cmd_deploy(settings, args),
    }
    handlers[args.command]()


if __name__ == "__main__":
    main(sys.argv[1:])
