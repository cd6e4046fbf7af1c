"""IMAGE_URL_TIMEOUT_S is one total deadline for an image_url fetch: a server that trickles its body, sends its
headers slowly or never answers cannot hold the fetch past it (urllib3's own timeouts are per socket read). The
origin listens on 127.0.0.1 and is allowed through the policy's allowed_networks, as in test_image_url_ssrf."""
from __future__ import annotations

import time
from typing import Iterator

import pytest

from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.netguard import FetchPolicy, fetch
from tests.loopback import Trickling, loopback_server

TIMEOUT_S = 1.0
POLICY = FetchPolicy(max_bytes=1 << 20, timeout_s=TIMEOUT_S, allowed_networks=("127.0.0.1/32",))
DRIP_S = 0.1            # each drip is far inside any per-read timeout
DRIPS = 60              # 6 s in all, against a 1 s deadline


class Trickler(Trickling):
    DRIPS, DRIP_S = DRIPS, DRIP_S

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        try:
            if self.path == "/trickled-body":
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(DRIPS))
                self.end_headers()
                self._drip(lambda i: b"\xff")
            elif self.path == "/slow-headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                self._drip(lambda i: f"X-Drip-{i}: {i}\r\n".encode())
                self.wfile.write(b"Content-Length: 0\r\n\r\n")
            elif self.path == "/redirect-then-trickle":
                self.send_response(302)
                self.send_header("Location", "/trickled-body")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self.send_response(204)
                self.end_headers()
        except OSError:          # the fetcher hung up on us, as it should
            pass


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    with loopback_server(Trickler) as url:
        yield url


@pytest.mark.parametrize("path", ["/trickled-body", "/slow-headers", "/redirect-then-trickle"])
def test_a_slow_origin_cannot_outlast_the_total_deadline(origin, path):
    started = time.monotonic()
    with pytest.raises(Face3dError) as failed:
        fetch(origin + path, POLICY)
    elapsed = time.monotonic() - started
    assert failed.value.code is ErrorCode.FETCH_FAILED, failed.value.message
    assert "longer than 1 s" in failed.value.message or "too long" in failed.value.message, failed.value.message
    assert elapsed < TIMEOUT_S + 0.5, f"{path}: the fetch took {elapsed:.1f} s against a {TIMEOUT_S} s deadline"


def test_a_silent_origin_ends_at_the_deadline_too():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)                  # accepts (the kernel does), never answers
    try:
        started = time.monotonic()
        with pytest.raises(Face3dError) as failed:
            fetch(f"http://127.0.0.1:{listener.getsockname()[1]}/x.jpg",
                  FetchPolicy(max_bytes=1024, timeout_s=TIMEOUT_S, allowed_networks=("127.0.0.1/32",)))
        assert failed.value.code is ErrorCode.FETCH_FAILED
        assert time.monotonic() - started < TIMEOUT_S + 0.5
    finally:
        listener.close()


def test_a_quick_origin_is_unaffected(origin):
    assert fetch(origin + "/empty", POLICY).data == b""
