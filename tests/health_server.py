"""HTTP servers on 127.0.0.1 for tests, and one that answers health paths: the edge's stand-in.

Every GET is recorded with its Host header and answered with the status set for its path (200 else).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class HealthServer:
    url: str = ""
    codes: dict[str, int] = field(default_factory=dict)
    seen: list[tuple[str, str | None]] = field(default_factory=list)


@contextmanager
def loopback(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve `handler` on 127.0.0.1, on a port the OS picks; yields the port, always stops."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def health_server() -> Iterator[HealthServer]:
    served = HealthServer()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            served.seen.append((self.path, self.headers.get("Host")))
            self.send_response(served.codes.get(self.path, 200))
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    with loopback(Handler) as port:
        served.url = f"http://127.0.0.1:{port}"
        yield served
