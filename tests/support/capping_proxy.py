"""A JSON-RPC proxy on loopback that behaves like a hosted provider in front of a local node.

- Refuses `eth_getLogs` over more than `max_range` blocks, or answering more than
  `max_results` logs, with the error a provider sends (three message styles: geth's
  "exceed maximum block range: N", Alchemy's "... this block range should work: [a, b]",
  and a bare "block range is too wide" with no hint).
- Counts every call per method (batch entries one by one), so tests can assert what a
  feature cost in RPC calls.
- Speaks `alchemy_getAssetTransfers` (paged with `pageKey`) by reading the node's logs, so
  the indexer provider is tested against the protocol, not a mock of our own client.
Real HTTP on a free port; a thread serves it.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import httpx
from eth_utils.crypto import keccak

from tests.support.loopback import serve, shut

TRANSFER = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
TRANSFER_SINGLE = "0x" + keccak(text="TransferSingle(address,address,address,uint256,uint256)").hex()
TRANSFER_BATCH = "0x" + keccak(text="TransferBatch(address,address,address,uint256[],uint256[])").hex()
ErrorStyle = Literal["geth", "alchemy", "bare"]


def _topic(address: str) -> str:
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")


def _words(data: str) -> list[int]:
    raw = data[2:]
    return [int(raw[i : i + 64], 16) for i in range(0, len(raw), 64)]


class CappingProxy:
    def __init__(
        self,
        upstream: str,
        *,
        max_range: int | None = None,
        max_results: int | None = None,
        style: ErrorStyle = "geth",
    ) -> None:
        self.upstream = upstream
        self.max_range = max_range
        self.max_results = max_results
        self.style = style
        self.calls: Counter[str] = Counter()
        self.refused = 0
        self.http_requests = 0
        self.inflight = 0
        self.max_inflight = 0  # most HTTP requests being served at once
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=60, trust_env=False)
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> None:
        with self._lock:
            self.calls.clear()
            self.refused = 0
            self.http_requests = 0
            self.max_inflight = 0

    def total_calls(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    # -- upstream ------------------------------------------------------------------
    def _forward(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not entries:
            return []
        answer = self._client.post(self.upstream, json=entries).json()
        if isinstance(answer, dict):
            return [answer]
        by_id = {entry.get("id"): entry for entry in answer}
        return [by_id[entry.get("id")] for entry in entries]

    def _upstream(self, method: str, params: list[Any]) -> Any:
        answer = self._client.post(self.upstream, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        body = answer.json()
        if "error" in body:
            raise RuntimeError(body["error"])
        return body["result"]

    def _block(self, tag: Any) -> int:
        if isinstance(tag, str) and tag.startswith("0x"):
            return int(tag, 16)
        if tag == "earliest":
            return 0
        return int(self._upstream("eth_blockNumber", []), 16)

    # -- eth_getLogs caps -----------------------------------------------------------
    def _range_error(self, request: dict[str, Any], start: int) -> dict[str, Any]:
        cap = self.max_range or 1
        if self.style == "alchemy":
            message = (
                f"Log response size exceeded. You can make eth_getLogs requests with up to a {cap} block range "
                "and no limit on the response size, or you can request any block range with a cap of 10K logs "
                f"in the response. Based on your parameters, this block range should work: "
                f"[{hex(start)}, {hex(start + cap - 1)}]"
            )
        elif self.style == "bare":
            message = "block range is too wide"
        else:
            message = f"exceed maximum block range: {cap}"
        return {"jsonrpc": "2.0", "id": request.get("id"), "error": {"code": -32005, "message": message}}

    def _refusal(self, request: dict[str, Any]) -> dict[str, Any] | None:
        if request.get("method") != "eth_getLogs" or self.max_range is None:
            return None
        query = (request.get("params") or [{}])[0]
        start, end = self._block(query.get("fromBlock", "latest")), self._block(query.get("toBlock", "latest"))
        if end - start + 1 > self.max_range:
            return self._range_error(request, start)
        return None

    def _cap_results(self, request: dict[str, Any], response: dict[str, Any]) -> dict[str, Any]:
        if request.get("method") != "eth_getLogs" or self.max_results is None:
            return response
        result = response.get("result")
        if isinstance(result, list) and len(result) > self.max_results:
            with self._lock:
                self.refused += 1
            return {
                "jsonrpc": "2.0",
                "id": request.get("id"),
                "error": {"code": -32005, "message": f"query returned more than {self.max_results} results"},
            }
        return response

    # -- alchemy_getAssetTransfers ----------------------------------------------------
    def _asset_transfers(self, request: dict[str, Any]) -> dict[str, Any]:
        query = (request.get("params") or [{}])[0]
        start, end = self._block(query.get("fromBlock", "0x0")), self._block(query.get("toBlock", "latest"))
        categories = set(query.get("category") or ["external", "erc20", "erc721", "erc1155"])
        sender, receiver = query.get("fromAddress"), query.get("toAddress")
        filters: list[list[Any]] = []
        if sender:
            filters += [[TRANSFER, _topic(sender)], [[TRANSFER_SINGLE, TRANSFER_BATCH], None, _topic(sender)]]
        if receiver:
            filters += [
                [TRANSFER, None, _topic(receiver)],
                [[TRANSFER_SINGLE, TRANSFER_BATCH], None, None, _topic(receiver)],
            ]
        logs: dict[tuple[str, str], dict[str, Any]] = {}
        for topics in filters:
            found = self._upstream("eth_getLogs", [{"fromBlock": hex(start), "toBlock": hex(end), "topics": topics}])
            for log in found:
                logs[(log["transactionHash"], log["logIndex"])] = log
        entries = []
        for log in sorted(logs.values(), key=lambda lg: (int(lg["blockNumber"], 16), int(lg["logIndex"], 16))):
            entry = self._alchemy_entry(log)
            if entry is None or entry["category"] not in categories:
                continue
            if sender and entry["from"] != sender.lower():
                continue
            if receiver and entry["to"] != receiver.lower():
                continue
            entries.append(entry)
        if query.get("order") == "desc":
            entries.reverse()
        offset = int(query.get("pageKey") or "0", 16) if query.get("pageKey") else 0
        size = int(query.get("maxCount", "0x3e8"), 16)
        page = entries[offset : offset + size]
        result: dict[str, Any] = {"transfers": page}
        if offset + size < len(entries):
            result["pageKey"] = hex(offset + size)
        return {"jsonrpc": "2.0", "id": request.get("id"), "result": result}

    @staticmethod
    def _alchemy_entry(log: dict[str, Any]) -> dict[str, Any] | None:
        topics = log["topics"]
        base = {
            "blockNum": log["blockNumber"],
            "uniqueId": f"{log['transactionHash']}:log:{int(log['logIndex'], 16)}",
            "hash": log["transactionHash"],
            "asset": None,
            "erc721TokenId": None,
            "erc1155Metadata": None,
            "tokenId": None,
            "value": None,
        }
        contract = log["address"].lower()
        if topics[0] == TRANSFER and len(topics) == 3:
            amount = _words(log["data"])[0] if len(log["data"]) > 2 else 0
            return {
                **base,
                "from": "0x" + topics[1][-40:],
                "to": "0x" + topics[2][-40:],
                "category": "erc20",
                "value": float(amount),
                "rawContract": {"value": hex(amount), "address": contract, "decimal": None},
            }
        if topics[0] == TRANSFER and len(topics) == 4:
            return {
                **base,
                "from": "0x" + topics[1][-40:],
                "to": "0x" + topics[2][-40:],
                "category": "erc721",
                "erc721TokenId": "0x" + topics[3][2:].rjust(64, "0"),
                "tokenId": "0x" + topics[3][2:].rjust(64, "0"),
                "rawContract": {"value": None, "address": contract, "decimal": None},
            }
        if topics[0] in (TRANSFER_SINGLE, TRANSFER_BATCH) and len(topics) == 4:
            words = _words(log["data"])
            if topics[0] == TRANSFER_SINGLE:
                pairs = [(words[0], words[1])]
            else:
                # (uint256[] ids, uint256[] values): two offsets, then each array's length and items.
                ids_at, values_at = words[0] // 32, words[1] // 32
                ids = words[ids_at + 1 : ids_at + 1 + words[ids_at]]
                values = words[values_at + 1 : values_at + 1 + words[values_at]]
                pairs = list(zip(ids, values, strict=False))
            return {
                **base,
                "from": "0x" + topics[2][-40:],
                "to": "0x" + topics[3][-40:],
                "category": "erc1155",
                "erc1155Metadata": [{"tokenId": hex(i), "value": hex(v)} for i, v in pairs],
                "rawContract": {"value": None, "address": contract, "decimal": None},
            }
        return None

    # -- HTTP --------------------------------------------------------------------------
    def handle(self, raw: bytes) -> bytes:
        """One HTTP body in, one out; the node's bytes pass through untouched when nothing is refused."""
        payload = json.loads(raw)
        entries = payload if isinstance(payload, list) else [payload]
        if len(entries) == 1 and str(entries[0].get("method", "")).startswith("proxy_"):
            return json.dumps(self._control(entries[0])).encode()
        with self._lock:
            self.http_requests += 1
            for entry in entries:
                self.calls[str(entry.get("method"))] += 1
        answers: list[dict[str, Any] | None] = [None] * len(entries)
        forward: list[tuple[int, dict[str, Any]]] = []
        for index, entry in enumerate(entries):
            if entry.get("method") == "alchemy_getAssetTransfers":
                answers[index] = self._asset_transfers(entry)
                continue
            refusal = self._refusal(entry)
            if refusal is not None:
                with self._lock:
                    self.refused += 1
                answers[index] = refusal
                continue
            forward.append((index, entry))
        if len(forward) == len(entries) and self.max_results is None:
            return self._client.post(self.upstream, content=raw, headers={"Content-Type": "application/json"}).content
        for (index, entry), response in zip(forward, self._forward([e for _, e in forward]), strict=True):
            answers[index] = self._cap_results(entry, response)
        return json.dumps(answers if isinstance(payload, list) else answers[0]).encode()

    def _control(self, request: dict[str, Any]) -> dict[str, Any]:
        """proxy_stats / proxy_reset: for a proxy in another process (not counted as calls)."""
        if request.get("method") == "proxy_reset":
            self.reset()
        with self._lock:
            stats = {
                "calls": dict(self.calls),
                "refused": self.refused,
                "http_requests": self.http_requests,
                "max_inflight": self.max_inflight,
            }
        return {"jsonrpc": "2.0", "id": request.get("id"), "result": stats}

    def start(self, port: int | None = None) -> CappingProxy:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, each answer waits ~40 ms for an ACK.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                with proxy._lock:
                    proxy.inflight += 1
                    proxy.max_inflight = max(proxy.max_inflight, proxy.inflight)
                try:
                    body = proxy.handle(raw)
                finally:
                    with proxy._lock:
                        proxy.inflight -= 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = serve(Handler, port)
        self.port = self._server.server_port
        return self

    def stop(self) -> None:
        shut(self._server)
        self._server = None
        self._client.close()

    def __enter__(self) -> CappingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main() -> None:
    """Run the proxy as its own process (the benchmark does, to keep it off the client's GIL)."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-range", type=int, default=None)
    parser.add_argument("--max-results", type=int, default=None)
    parser.add_argument("--style", choices=["geth", "alchemy", "bare"], default="geth")
    args = parser.parse_args()
    proxy = CappingProxy(args.upstream, max_range=args.max_range, max_results=args.max_results, style=args.style)
    proxy.start(args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with contextlib.suppress(KeyboardInterrupt):
        stop.wait()
    proxy.stop()


if __name__ == "__main__":
    main()
