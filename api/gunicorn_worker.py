"""gunicorn's gthread worker with the two timeouts it lacks, so a few slow clients cannot hold its threads:

- a total deadline on reading a request's line and headers (API_HEADER_TIMEOUT_S): a watchdog shuts the
  connection down when it passes, however the bytes trickle in (slowloris);
- a timeout on each read of the body and each write of the response (API_BODY_TIMEOUT_S), the socket's own
  timeout once the headers are in; a stalled upload then ends with a 400 (werkzeug's form parser) or 408
  (api/problems.py) problem.

HTTP/1.1 only (gunicorn's default `http_protocols`): an HTTP/2 connection would carry many requests under one watchdog.
The shipped deployment also puts a buffering proxy in front (compose's nginx), which absorbs slow clients before
they reach a thread at all; these limits hold without it (the Dockerfile alone, `face3d serve`).
"""
from __future__ import annotations

import socket
import threading
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from face3d.shared.config import load_settings


class GuardedThreadWorker(ThreadWorker):
    header_timeout_s = 10.0
    body_timeout_s = 30.0

    def init_process(self) -> None:
        settings = load_settings()
        self.header_timeout_s, self.body_timeout_s = settings.api_header_timeout_s, settings.api_body_timeout_s
        super().init_process()

    def handle(self, conn: Any) -> Any:
        watchdog = threading.Timer(self.header_timeout_s, _shut, args=(conn,))
        watchdog.daemon = True
        conn.face3d_header_watchdog = watchdog
        watchdog.start()
        try:
            return super().handle(conn)
        finally:
            watchdog.cancel()

    def handle_request(self, req: Any, conn: Any) -> Any:
        conn.face3d_header_watchdog.cancel()       # the headers are in; the body has its per-read timeout
        conn.sock.settimeout(self.body_timeout_s)
        return super().handle_request(req, conn)


def _shut(conn: Any) -> None:
    """End the blocked header read in the worker thread (the plain socket's shutdown, under TLS too)."""
    try:
        socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)
    except (OSError, TypeError):
        pass
