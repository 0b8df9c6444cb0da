"""A local server that speaks the OpenAI chat-completions protocol, to test the LLM orchestrator's failure paths.

Real HTTP on a free loopback port. It answers `POST /v1/chat/completions` according to
`mode` (or, per request, the next entry of `script`):

- ok:             a tool call whose arguments are `arguments` (a string, sent verbatim)
- out_of_bounds:  a tool call with numbers far outside any range and unknown choices
- malformed:      a tool call whose arguments are truncated JSON
- refusal:        no tool call; a text answer and OpenAI's `refusal` field
- timeout:        sleeps `delay_s` before answering (longer than the client waits)
- 429:            HTTP 429 with OpenAI's rate-limit error body and `retry-after-ms`
- 500:            HTTP 500

Like llama.cpp's server it refuses `response_format.type=json_schema` (HTTP 422), so a
client that asks for it fails loudly here too. Every request body is recorded.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.loopback import serve, shut

MODES = ("ok", "out_of_bounds", "malformed", "refusal", "timeout", "429", "500")
OUT_OF_BOUNDS = json.dumps(
    {
        "palette": "hot pink",
        "medium": "NEON",
        "motif": "flow",
        "mood": 7,
        "complexity": 999,
        "energy": -40,
        "symmetry": 55,
        "grain": "lots",
        "hue_shift": 1e9,
    }
)


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class OpenAIServer:
    def __init__(self, *, mode: str = "ok", arguments: str = "{}", delay_s: float = 5.0, model: str = "test-model"):
        self.mode = mode
        self.arguments = arguments
        self.delay_s = delay_s
        self.model = model
        self.script: deque[str] = deque()
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self, mode: str = "ok", arguments: str | None = None, script: list[str] | None = None) -> None:
        with self._lock:
            self.mode = mode
            if arguments is not None:
                self.arguments = arguments
            self.script = deque(script or [])
            self.requests.clear()

    def _next_mode(self) -> str:
        with self._lock:
            return self.script.popleft() if self.script else self.mode

    def _completion(self, message: dict[str, Any], finish_reason: str) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }

    def _tool_call(self, body: dict[str, Any], arguments: str) -> dict[str, Any]:
        tools = body.get("tools") or [{"function": {"name": "unknown"}}]
        name = tools[0]["function"]["name"]
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}},
            ],
        }
        return self._completion(message, "tool_calls")

    def respond(self, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
        if (body.get("response_format") or {}).get("type") == "json_schema":
            detail = "Input should be 'text' or 'json_object'"
            return 422, {}, {"error": {"message": detail, "type": "invalid_request_error", "code": None}}
        mode = self._next_mode()
        if mode == "timeout":
            time.sleep(self.delay_s)
            mode = "ok"
        if mode == "429":
            error = {"message": "Rate limit reached", "type": "requests", "param": None, "code": "rate_limit_exceeded"}
            return 429, {"retry-after-ms": "10"}, {"error": error}
        if mode == "500":
            return 500, {}, {"error": {"message": "upstream crashed", "type": "server_error", "code": None}}
        if mode == "refusal":
            message = {
                "role": "assistant",
                "content": "I'm sorry, I can't help with that.",
                "refusal": "I'm sorry, I can't help with that.",
            }
            return 200, {}, self._completion(message, "stop")
        if mode == "malformed":
            return 200, {}, self._tool_call(body, '{"palette": "dawn", "complexity": 5, "energy": ')
        if mode == "out_of_bounds":
            return 200, {}, self._tool_call(body, OUT_OF_BOUNDS)
        return 200, {}, self._tool_call(body, self.arguments)

    def start(self) -> OpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, headers: dict[str, str], payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout mode)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {}, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {}, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    headers = {key.lower(): value for key, value in self.headers.items()}
                    server.requests.append(Recorded(self.path, headers, body))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {}, {"error": {"message": "not found"}})
                    return
                self._send(*server.respond(body))

        self._server = serve(Handler)
        self.port = self._server.server_port
        return self

    def stop(self) -> None:
        shut(self._server)
        self._server = None

    def __enter__(self) -> OpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
