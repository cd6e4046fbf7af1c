"""gunicorn's gthread worker with the two timeouts it lacks, so a few slow clients cannot hold its threads:

- a total deadline on reading a request's line and headers (API_HEADER_TIMEOUT_S): a watchdog thread shuts the
  connection down when it passes, however the bytes trickle in (slowloris);
- a timeout on each read of the body and each write of the response (API_BODY_TIMEOUT_S), the socket's own
  timeout once the headers are in; a stalled upload then ends with a 400 (werkzeug's form parser) or 408
  (api/problems.py) problem.

HTTP/1.1 only (gunicorn's default `http_protocols`): an HTTP/2 connection would carry many requests under one watchdog.
The shipped deployment also puts a buffering proxy in front (compose's nginx), which absorbs slow clients before
they reach a thread at all; these limits hold without it (the Dockerfile alone, `face3d serve`).
"""
from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from face3d.shared.config import load_settings


class GuardedThreadWorker(ThreadWorker):
    header_timeout_s = 10.0
    body_timeout_s = 30.0

    def init_process(self) -> None:
        settings = load_settings()
        self.header_timeout_s, self.body_timeout_s = settings.api_header_timeout_s, settings.api_body_timeout_s
        self.watchdog = Watchdog()
        super().init_process()

    def handle(self, conn: Any) -> Any:
        conn.face3d_deadline = self.watchdog.arm(conn, self.header_timeout_s)
        try:
            return super().handle(conn)
        finally:
            self.watchdog.disarm(conn.face3d_deadline)

    def handle_request(self, req: Any, conn: Any) -> Any:
        self.watchdog.disarm(conn.face3d_deadline)     # the headers are in; the body has its per-read timeout
        conn.sock.settimeout(self.body_timeout_s)
        return super().handle_request(req, conn)


class Watchdog:
    """One thread per worker process that shuts down connections whose header deadline passed. A heap of
    deadlines; disarmed entries are dropped when they come up (a timer thread per request cost ~1 ms each)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Any]] = []
        self._armed: set[int] = set()
        self._tokens = itertools.count()
        self._wake = threading.Condition()
        threading.Thread(target=self._run, name="header-watchdog", daemon=True).start()

    def arm(self, conn: Any, timeout_s: float) -> int:
        token = next(self._tokens)
        with self._wake:
            heapq.heappush(self._heap, (time.monotonic() + timeout_s, token, conn))
            self._armed.add(token)
            if self._heap[0][1] == token:           # earlier than everything waited for: wake the thread
                self._wake.notify()
        return token

    def disarm(self, token: int) -> None:
        with self._wake:
            self._armed.discard(token)

    def _run(self) -> None:
        with self._wake:
            while True:
                if not self._heap:
                    self._wake.wait()
                    continue
                deadline, token, conn = self._heap[0]
                if token not in self._armed:
                    heapq.heappop(self._heap)
                elif deadline <= time.monotonic():
                    heapq.heappop(self._heap)
                    self._armed.discard(token)
                    _shut(conn)
                else:
                    self._wake.wait(deadline - time.monotonic())


def _shut(conn: Any) -> None:
    """End the blocked header read in the worker thread (the plain socket's shutdown, under TLS too)."""
    try:
        socket.socket.shutdown(conn.sock, socket.SHUT_RDWR)
    except (OSError, TypeError):
        pass
