"""A small HTTP server on 127.0.0.1 for tests that play a hostile origin or webhook receiver."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator


class Trickling(BaseHTTPRequestHandler):
    """A handler that can send a reply in DRIPS pieces, DRIP_S apart, and logs nothing."""

    DRIPS = 60
    DRIP_S = 0.1

    def _drip(self, piece: Callable[[int], bytes]) -> None:
        for i in range(self.DRIPS):
            self.wfile.write(piece(i))
            self.wfile.flush()
            time.sleep(self.DRIP_S)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def loopback_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on a free loopback port for the block; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
