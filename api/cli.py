"""The `personamint` command line: run the service's processes, the local stack, and the demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from pydantic import ValidationError

from api.settings import Settings


def load_settings() -> Settings:
    try:
        return Settings()  # type: ignore[call-arg]
    except ValidationError as exc:
        lines = [f"  PERSONAMINT_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()]
        raise SystemExit("invalid settings:\n" + "\n".join(lines)) from None


def _logging() -> None:
    logging.basicConfig(
        level=os.environ.get("PERSONAMINT_LOG_LEVEL", "INFO"),
        format='{"at":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","message":"%(message)s"}',
    )
    # SAQ logs every job's kwargs at INFO; job ids are fine, but keep the noise down.
    logging.getLogger("saq").setLevel(logging.WARNING)


def cmd_api(settings: Settings) -> None:
    import uvicorn

    from api.app import create_app

    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning", access_log=False)


def cmd_worker(settings: Settings) -> None:
    from api.worker import run_worker

    asyncio.run(run_worker(settings))


def cmd_minter(settings: Settings) -> None:
    from api.minter import run_minter

    asyncio.run(run_minter(settings))


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    """Production: the API alone. Local: start what is missing, then API + worker + minter."""
    if settings.env == "production":
        cmd_api(settings)
        return

    from api.local import LocalStack, ServiceProcesses, deploy_local_contract, service_env

    stack = LocalStack(settings.data_dir / "local", persistent=True)
    try:
        redis_url, rpc_url = stack.start(redis_url=settings.redis_url, rpc_url=settings.rpc_url)
        address, chain_id = asyncio.run(deploy_local_contract(rpc_url, settings.data_dir / "local" / "chain.json"))
        env = service_env(
            redis_url=redis_url,
            rpc_url=rpc_url,
            contract_address=address,
            chain_id=chain_id,
            data_dir=settings.data_dir,
        )
        services = ServiceProcesses(
            env, port=settings.port, log_dir=settings.data_dir / "local" / "logs", workers=args.workers
        ).start()
        api_key = asyncio.run(_new_key(redis_url, "local"))
        print(f"Persona Mint is up at {services.base_url}  (contract {address} on chain {chain_id})")
        print(f"API key (tenant 'local'): {api_key}")
        print(f"Logs: {settings.data_dir / 'local' / 'logs'}   Ctrl-C stops everything.")
        try:
            for process in services.processes.values():
                process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            services.stop()
    finally:
        stack.stop()


async def _new_key(redis_url: str, tenant: str) -> str:
    from redis.asyncio import Redis

    from api.auth import create_api_key

    client = Redis.from_url(redis_url)
    try:
        _, api_key = await create_api_key(client, tenant)
    finally:
        await client.aclose()
    return api_key


def cmd_demo(settings: Settings, args: argparse.Namespace) -> None:
    from api.demo import run_demo

    code = run_demo(settings, out_dir=Path(args.out), serve=args.serve, wallets=args.wallets)
    raise SystemExit(code)


def cmd_keys(settings: Settings, args: argparse.Namespace) -> None:
    if settings.redis_url is None:
        raise SystemExit("PERSONAMINT_REDIS_URL is not set")
    print(asyncio.run(_new_key(settings.redis_url, args.tenant)))


def cmd_verify(settings: Settings, args: argparse.Namespace) -> None:
    import json

    from api.collections import load_collections
    from api.verify import verify_token

    if not (settings.rpc_url and settings.contract_address):
        raise SystemExit("verify needs PERSONAMINT_RPC_URL and PERSONAMINT_CONTRACT_ADDRESS")
    gateway = args.gateway or settings.public_url or f"http://{settings.host}:{settings.port}"
    report = asyncio.run(
        verify_token(
            rpc_url=settings.rpc_url, contract_address=settings.contract_address, token_id=args.token_id,
            gateway_url=gateway, collections=load_collections(settings.collections_dir),
        )
    )
    print(json.dumps(report.to_dict(), indent=2))
    raise SystemExit(0 if report.ok else 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="personamint", description="Personalized NFT minting service.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="run the HTTP API only")
    sub.add_parser("worker", help="run a pipeline worker")
    sub.add_parser("minter", help="run the minter (one per chain + signer)")
    serve = sub.add_parser("serve", help="run the service; in local mode start everything it needs")
    serve.add_argument("--workers", type=int, default=1)
    demo = sub.add_parser("demo", help="seed demo wallets on a fresh local chain and mint for them")
    demo.add_argument("--out", default="demo-out", help="folder for the gallery and images")
    demo.add_argument("--serve", action="store_true", help="keep the service up afterwards")
    demo.add_argument("--wallets", default="all", help="comma-separated archetypes, or 'all'")
    verify = sub.add_parser("verify", help="re-render a token from its metadata and compare pixels")
    verify.add_argument("token_id", type=int)
    verify.add_argument("--gateway", help="IPFS gateway base URL (default: this service)")
    keys = sub.add_parser("keys", help="create an API key for a tenant")
    keys.add_argument("tenant")
    args = parser.parse_args(argv)
    _logging()
    settings = load_settings()
    handlers = {
        "api": lambda: cmd_api(settings),
        "worker": lambda: cmd_worker(settings),
        "minter": lambda: cmd_minter(settings),
        "serve": lambda: cmd_serve(settings, args),
        "demo": lambda: cmd_demo(settings, args),
        "keys": lambda: cmd_keys(settings, args),
        "verify": lambda: cmd_verify(settings, args),
    }
    handlers[args.command]()


if __name__ == "__main__":
    main(sys.argv[1:])
