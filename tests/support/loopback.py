"""The test servers' one way to listen: a threaded HTTP server on 127.0.0.1, served from a daemon thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from devstack.anvil import free_port


def serve(handler: type[BaseHTTPRequestHandler], port: int | None = None) -> ThreadingHTTPServer:
    """Start serving `handler` on `port` (a free one by default); `server.server_port` says which."""
    server = ThreadingHTTPServer(("127.0.0.1", port or free_port()), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


def shut(server: ThreadingHTTPServer | None) -> None:
    """Stop serving and close the socket (None: nothing was started)."""
    if server is not None:
        server.shutdown()
        server.server_close()
