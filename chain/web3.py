"""Build the AsyncWeb3 the service uses for ABI-encoded contract calls and deploys, carried by chain.rpc.JsonRpc."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from web3 import AsyncWeb3
from web3._utils.encoding import Web3JsonEncoder
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from chain.errors import ChainError
from chain.rpc import JsonRpc


class JsonRpcProvider(AsyncJSONBaseProvider):
    """A web3.py provider whose requests go through `JsonRpc` (httpx, its retries and errors), not web3's own.

    Transport failures raise the client's ChainUnavailable; JSON-RPC error objects come
    back to web3 as responses, so it still raises its ContractLogicError and friends.
    """

    def __init__(self, rpc: JsonRpc) -> None:
        super().__init__()
        self.rpc = rpc

    @property
    def endpoint_uri(self) -> str:
        return self.rpc.url

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        # web3 hands over HexBytes and AttributeDicts; its own encoder makes them JSON.
        plain: Sequence[Any] = json.loads(json.dumps(params or [], cls=Web3JsonEncoder))
        return cast(RPCResponse, await self.rpc.envelope(method, plain))

    async def is_connected(self, show_traceback: bool = False) -> bool:
        try:
            response = await self.make_request(RPCEndpoint("web3_clientVersion"), [])
        except ChainError:
            if show_traceback:
                raise
            return False
        return "error" not in response and response.get("jsonrpc") == "2.0"

    async def disconnect(self) -> None:
        await self.rpc.aclose()


def connect_web3(url: str, *, timeout_s: float = 30.0, retries: int = 4) -> AsyncWeb3[JsonRpcProvider]:
    """An AsyncWeb3 on `url`; `retries` transport retries per request (0: one try, for start-up probes).

    The defaults are web3's own HTTP provider's: a 30 s timeout, five tries from 0.125 s apart.
    """
    rpc = JsonRpc(url, timeout_s=timeout_s, retries=retries, backoff_s=0.25, retry_rate_limits=False)
    return AsyncWeb3(JsonRpcProvider(rpc))
