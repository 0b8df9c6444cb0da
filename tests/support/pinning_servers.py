"""Local stand-ins for remote pinning services, real HTTP on free loopback ports.

`FakeKubo` speaks the Kubo RPC API (`/api/v0/add`, `pin/add`, `pin/ls`, `cat`) and
`FakePinata` Pinata's upload APIs (`/pinning/pinFileToIPFS`, `/v3/files`) plus a gateway,
as documented, including their error bodies. Both can be told to fail, stall or
misbehave so the clients' error and timeout paths run against real sockets.
`MockPinningService` runs the npm package `mock-ipfs-pinning-service`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from devstack.anvil import free_port
from ipfs.cid import cid_for_bytes
from tests.support.loopback import serve, shut

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))

Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Part:
    """One multipart/form-data part."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes


def parse_multipart(content_type: str, body: bytes) -> dict[str, Part]:
    """A strict little RFC 7578 parser: enough to check that clients send what the docs ask."""
    marker = "boundary="
    if "multipart/form-data" not in content_type or marker not in content_type:
        raise ValueError("not multipart/form-data")
    boundary = content_type.split(marker, 1)[1].split(";")[0].strip().strip('"').encode()
    parts: dict[str, Part] = {}
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk[2:].partition(b"\r\n\r\n")
        if not data.endswith(b"\r\n"):
            raise ValueError("part does not end with CRLF")
        data = data[:-2]
        headers: dict[str, str] = {}
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        fields = dict(item.strip().split("=", 1) for item in disposition.split(";")[1:] if "=" in item)
        name = fields.get("name", "").strip('"')
        filename = fields["filename"].strip('"') if "filename" in fields else None
        parts[name] = Part(name, filename, headers.get("content-type"), data)
    return parts


def _json(status: int, value: Any, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(value).encode()


@dataclass
class FakeServer:
    """Base: a ThreadingHTTPServer whose behaviour the test can script."""

    token: str | None = None
    requests: list[Recorded] = field(default_factory=list)
    # Scripted trouble for the next requests, consumed in order: an HTTP status to answer
    # with, "drop" to close the socket unanswered, or ("stall", seconds).
    trouble: deque[Any] = field(default_factory=deque)
    stall_all_s: float = 0.0
    _server: ThreadingHTTPServer | None = None
    _stopping: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in separate writes; with Nagle on, the body waits
            # for the client's delayed ACK (~40 ms a response) and skews every timing.
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                query = {key: values[-1] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
                recorded = Recorded(method, split.path, query, {k.lower(): v for k, v in self.headers.items()}, body)
                fake.requests.append(recorded)
                trouble = fake.trouble.popleft() if fake.trouble else None
                stall = fake.stall_all_s
                if isinstance(trouble, tuple) and trouble[0] == "stall":
                    stall = trouble[1]
                if stall:
                    fake._stopping.wait(stall)
                if trouble == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if isinstance(trouble, int):
                    status, headers, payload = fake.trouble_reply(trouble)
                else:
                    status, headers, payload = fake.handle(recorded)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

        self._server = serve(Handler)
        return self

    def stop(self) -> None:
        self._stopping.set()
        shut(self._server)
        self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def calls(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def trouble_reply(self, status: int) -> Reply:
        headers = {"Retry-After": "0"} if status == 429 else {}
        return _json(status, {"error": f"scripted {status}"}, headers)

    def handle(self, request: Recorded) -> Reply:
        raise NotImplementedError


@dataclass
class FakeKubo(FakeServer):
    """Kubo's RPC API over an in-memory blockstore.

    `ignore_import_params` makes the node build the DAG with its own defaults (CIDv0,
    dag-pb leaves), as a node with an old or customised import profile does.
    """

    ignore_import_params: bool = False
    blocks: dict[str, bytes] = field(default_factory=dict)
    pins: set[str] = field(default_factory=set)

    def trouble_reply(self, status: int) -> Reply:
        if status == 500:
            return _json(500, {"Message": "scripted failure", "Code": 0, "Type": "error"})
        return status, {"Content-Type": "text/plain"}, f"{status} scripted".encode()

    def handle(self, request: Recorded) -> Reply:
        if self.token is not None and request.headers.get("authorization") != self.token:
            return 403, {"Content-Type": "text/plain"}, b"403 - Forbidden"
        if not request.path.startswith("/api/v0/"):
            return 404, {"Content-Type": "text/plain"}, b"404 page not found"
        if request.method != "POST":
            return 405, {"Content-Type": "text/plain"}, b"405 - Method Not Allowed"
        command = request.path.removeprefix("/api/v0/")
        handlers: dict[str, Callable[[Recorded], Reply]] = {
            "add": self._add,
            "pin/add": self._pin_add,
            "pin/ls": self._pin_ls,
            "cat": self._cat,
            "version": lambda _: _json(200, {"Version": "0.0.0-fake"}),
        }
        handler = handlers.get(command)
        if handler is None:
            return 404, {"Content-Type": "text/plain"}, b"404 page not found"
        return handler(request)

    @staticmethod
    def _error(message: str) -> Reply:
        return _json(500, {"Message": message, "Code": 0, "Type": "error"})

    def _add(self, request: Recorded) -> Reply:
        try:
            parts = parse_multipart(request.headers.get("content-type", ""), request.body)
        except ValueError as exc:
            return self._error(f"file argument 'path' is required ({exc})")
        if not parts:
            return self._error("file argument 'path' is required")
        part = next(iter(parts.values()))
        query = request.query
        if self.ignore_import_params:
            cid = cid_for_bytes(part.data, version=0)
        else:
            version = query.get("cid-version", "0")
            raw_leaves = query.get("raw-leaves", "true" if version == "1" else "false")
            chunker = query.get("chunker", "size-262144")
            if chunker != "size-262144" or query.get("hash", "sha2-256") != "sha2-256":
                return self._error("this fake only builds size-262144 sha2-256 DAGs")
            if version == "1" and raw_leaves == "true":
                cid = cid_for_bytes(part.data, version=1)
            elif version == "0" and raw_leaves == "false":
                cid = cid_for_bytes(part.data, version=0)
            else:
                return self._error("this fake builds CIDv1 with raw leaves or CIDv0 without")
        self.blocks[cid] = part.data
        if query.get("pin", "true") == "true":
            self.pins.add(cid)
        line = {"Name": part.filename or cid, "Hash": cid, "Size": str(len(part.data))}
        return 200, {"Content-Type": "application/json", "X-Chunked-Output": "1"}, json.dumps(line).encode() + b"\n"

    def _pin_add(self, request: Recorded) -> Reply:
        cid = request.query.get("arg", "")
        if cid not in self.blocks:
            # A real node would search the network for the blocks; this one stalls.
            self._stopping.wait(30)
            return self._error(f"failed to fetch {cid}")
        self.pins.add(cid)
        return _json(200, {"Pins": [cid]})

    def _pin_ls(self, request: Recorded) -> Reply:
        cid = request.query.get("arg", "")
        if cid not in self.pins:
            return self._error(f"path '{cid}' is not pinned")
        return _json(200, {"Keys": {cid: {"Type": "recursive", "Name": ""}}})

    def _cat(self, request: Recorded) -> Reply:
        cid = request.query.get("arg", "")
        if cid not in self.blocks:
            return self._error(f"block was not found locally (offline): {cid}")
        return 200, {"Content-Type": "text/plain"}, self.blocks[cid]


@dataclass
class FakePinata(FakeServer):
    """Pinata's legacy and v3 upload endpoints and a gateway, over memory.

    `reserialize_json` re-encodes JSON uploads before hashing, as `pinJSONToIPFS` would.
    """

    reserialize_json: bool = False
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)

    def trouble_reply(self, status: int) -> Reply:
        headers = {"Retry-After": "0"} if status == 429 else {}
        return _json(status, {"error": {"reason": "SCRIPTED", "details": f"scripted {status}"}}, headers)

    def handle(self, request: Recorded) -> Reply:
        if request.method == "GET" and request.path.startswith("/ipfs/"):
            found = self.files.get(request.path.removeprefix("/ipfs/"))
            if found is None:
                return 404, {"Content-Type": "text/plain"}, b"not found"
            return 200, {"Content-Type": found[1]}, found[0]
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _json(401, {"error": {"reason": "INVALID_CREDENTIALS", "details": "Invalid/expired credentials"}})
        if request.method == "POST" and request.path == "/pinning/pinFileToIPFS":
            return self._legacy(request)
        if request.method == "POST" and request.path == "/v3/files":
            return self._v3(request)
        return 404, {"Content-Type": "text/plain"}, b"not found"

    def _stored(self, part: Part, version: int) -> tuple[str, bool]:
        data = part.data
        if self.reserialize_json and (part.content_type or "").startswith("application/json"):
            data = json.dumps(json.loads(data), indent=2).encode()
        cid = cid_for_bytes(data, version=version)
        duplicate = cid in self.files
        self.files[cid] = (data, part.content_type or "application/octet-stream")
        return cid, duplicate

    def _legacy(self, request: Recorded) -> Reply:
        try:
            parts = parse_multipart(request.headers.get("content-type", ""), request.body)
        except ValueError:
            return _json(400, {"error": {"reason": "INVALID_REQUEST", "details": "not multipart"}})
        if "file" not in parts:
            return _json(400, {"error": {"reason": "KEYS_MUST_BE_STRINGS", "details": "file is required"}})
        options = json.loads(parts["pinataOptions"].data) if "pinataOptions" in parts else {}
        cid, duplicate = self._stored(parts["file"], int(options.get("cidVersion", 0)))
        return _json(
            200,
            {
                "IpfsHash": cid,
                "PinSize": len(parts["file"].data),
                "Timestamp": "2025-01-01T00:00:00Z",
                "isDuplicate": duplicate,
            },
        )

    def _v3(self, request: Recorded) -> Reply:
        try:
            parts = parse_multipart(request.headers.get("content-type", ""), request.body)
        except ValueError:
            return _json(400, {"error": {"message": "not multipart"}})
        if "file" not in parts:
            return _json(400, {"error": {"message": "file is required"}})
        cid, _ = self._stored(parts["file"], 1)
        name = parts["name"].data.decode() if "name" in parts else parts["file"].filename
        return _json(
            200,
            {
                "data": {
                    "id": f"id-{cid[-8:]}",
                    "name": name,
                    "cid": cid,
                    "size": len(parts["file"].data),
                    "number_of_files": 1,
                    "mime_type": parts["file"].content_type,
                    "network": parts["network"].data.decode() if "network" in parts else "private",
                    "created_at": "2025-01-01T00:00:00Z",
                }
            },
        )


class MockPinningService:
    """`mock-ipfs-pinning-service` (npm) on a free port: in-memory, token-checked.

    It takes a pin's status from its name prefix ("pinned-…", "failed-…", "pinning-…");
    any other name stays `queued` forever, and it accepts a pin without a CID.
    """

    def __init__(self, token: str = "secret-token") -> None:
        self.token = token
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server; closed in stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> MockPinningService:
        node = shutil.which("node")
        cli = PROJECT_ROOT / "node_modules" / "mock-ipfs-pinning-service" / "cli.js"
        if node is None or not cli.is_file():
            raise RuntimeError("mock-ipfs-pinning-service is not installed: run `npm ci` in the repository root")
        self.process = subprocess.Popen(
            [node, str(cli), "--port", str(self.port), "--token", self.token, "--loglevel", "error"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        request = urllib.request.Request(f"{self.url}/pins", headers={"Authorization": f"Bearer {self.token}"})
        while True:
            if self.process.poll() is not None:
                self._log.seek(0)
                raise RuntimeError(f"mock-ipfs-pinning-service exited: {self._log.read().decode()[-1000:]}")
            try:
                with _LOOPBACK.open(request, timeout=1) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("mock-ipfs-pinning-service did not answer in time")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        self._log.close()

    def __enter__(self) -> MockPinningService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
