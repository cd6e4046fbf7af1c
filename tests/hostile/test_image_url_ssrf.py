"""image_url submissions: refused for private, loopback, link-local, mapped and non-http destinations (also when a
redirect leads there), capped in size and time, pinned to the checked address; allowed with
IMAGE_URL_ALLOW_PRIVATE=1 (labs, tests)."""
from __future__ import annotations

import ipaddress
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.netguard import FetchPolicy, address_refusal, fetch
from tests.api.fakes import assert_problem

FACE = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces" / "g_grayscale_hopper.jpg"
LIMIT = 64 * 1024


class Handler(BaseHTTPRequestHandler):
    seen_hosts: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        Handler.seen_hosts.append(self.headers.get("Host", ""))
        path, _, query = self.path.partition("?")
        if path == "/redirect":
            self._send(302, b"", {"Location": query.removeprefix("to=")})
        elif path == "/face.jpg":
            self._send(200, FACE.read_bytes(), {"Content-Type": "image/jpeg"})
        elif path == "/big":
            self._send(200, b"\xff\xd8\xff" + bytes(LIMIT * 2), {"Content-Type": "image/jpeg"})
        elif path == "/big-unannounced":
            self.send_response(200)
            self.end_headers()
            for _ in range(4):
                self.wfile.write(bytes(LIMIT // 2 + 1))
        elif path == "/page.html":
            self._send(200, b"<!doctype html><html><body>hi</body></html>", {"Content-Type": "image/jpeg"})
        else:
            self._send(404, b"missing", {})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def origin() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


STRICT = FetchPolicy(max_bytes=LIMIT, timeout_s=5)
LOCAL_ONLY = FetchPolicy(max_bytes=LIMIT, timeout_s=5, allowed_networks=("127.0.0.1/32",))


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://localhost:8000/x.jpg", "http://10.0.0.7/a.jpg", "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/", "http://[fd00::1]/", "http://[fe80::1]/", "http://0.0.0.0/",
    "http://224.0.0.1/", "http://2130706433/", "http://0x7f.1/", "http://100.64.0.1/",
])
def test_private_destinations_are_refused(url):
    with pytest.raises(Face3dError) as refused:
        fetch(url, STRICT)
    assert refused.value.code is ErrorCode.URL_NOT_ALLOWED, refused.value.message


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/a.jpg", "gopher://example.com/",
                                 "javascript:alert(1)", "http://user:secret@example.com/a.jpg", "http:///nohost"])
def test_other_schemes_and_odd_urls_are_refused(url):
    with pytest.raises(Face3dError) as refused:
        fetch(url, STRICT)
    assert refused.value.code is ErrorCode.URL_NOT_ALLOWED


@pytest.mark.parametrize("target", ["http://127.0.0.2/x.jpg", "http://10.0.0.1/", "http://169.254.169.254/",
                                    "http://[::1]/", "file:///etc/passwd"])
def test_redirect_to_a_private_address_is_refused(origin, target):
    with pytest.raises(Face3dError) as refused:
        fetch(f"{origin}/redirect?to={target}", LOCAL_ONLY)
    assert refused.value.code is ErrorCode.URL_NOT_ALLOWED


def test_allowed_redirect_is_followed_and_rechecked(origin):
    fetched = fetch(f"{origin}/redirect?to={origin}/face.jpg", LOCAL_ONLY)
    assert fetched.data == FACE.read_bytes() and fetched.filename == "face.jpg" and len(fetched.hops) == 2
    loop = f"{origin}/redirect?to={origin}/redirect?to={origin}/redirect?to={origin}/face.jpg"
    with pytest.raises(Face3dError) as too_many:
        fetch(loop, FetchPolicy(max_bytes=LIMIT, max_redirects=1, allowed_networks=("127.0.0.1/32",)))
    assert too_many.value.code is ErrorCode.FETCH_FAILED


@pytest.mark.parametrize("path", ["/big", "/big-unannounced"])
def test_oversize_body_is_refused(origin, path):
    with pytest.raises(Face3dError) as refused:
        fetch(origin + path, LOCAL_ONLY)
    assert refused.value.code is ErrorCode.PAYLOAD_TOO_LARGE


def test_connection_is_pinned_to_the_checked_address(origin):
    """The name is resolved once; the connection goes to that address with the URL's Host header, so a second
    (rebinding) DNS answer is never used."""
    answers = iter([["127.0.0.1"], ["10.9.9.9"]])
    calls = []

    def rebinding_resolver(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    port = origin.rsplit(":", 1)[1]
    fetched = fetch(f"http://images.example:{port}/face.jpg", LOCAL_ONLY, resolve=rebinding_resolver)
    assert fetched.data == FACE.read_bytes()
    assert calls == ["images.example"] and Handler.seen_hosts[-1] == f"images.example:{port}"


def test_unreachable_and_missing_are_fetch_failed(origin):
    for url in (f"{origin}/missing.jpg", "http://127.0.0.1:9/x.jpg"):
        with pytest.raises(Face3dError) as failed:
            fetch(url, LOCAL_ONLY)
        assert failed.value.code is ErrorCode.FETCH_FAILED


# ---------------------------------------------------------------- through the API


@pytest.fixture
def url_app(tmp_path, session_factory, local_storage):
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings
    from tests.stubs import RecordingQueue

    def build(**overrides):
        settings = load_settings(env={}, data_dir=tmp_path / "data", max_upload_bytes=LIMIT, **overrides)
        app = create_app(settings, session_factory=session_factory, storage=local_storage,
                         queue=RecordingQueue())
        app.testing = True
        return app.test_client()

    return build


@pytest.mark.parametrize("url", ["http://127.0.0.1:1/a.jpg", "http://169.254.169.254/latest/meta-data/",
                                 "http://[::ffff:10.0.0.1]/", "ftp://example.com/a.jpg"])
def test_api_refuses_private_urls_with_422(url_app, url):
    client = url_app()
    assert_problem(client.post("/v1/jobs", json={"image_url": url}), 422, "url_not_allowed")
    assert_problem(client.post("/v1/jobs", data={"image_url": url}), 422, "url_not_allowed")


def test_api_fetches_allowed_url_when_private_is_allowed(url_app, origin, local_storage, session_factory):
    from face3d.shared import jobs

    client = url_app(image_url_allow_private=True)
    response = client.post("/v1/jobs", json={"image_url": f"{origin}/face.jpg", "options": {"video": False}})
    assert response.status_code == 202, response.get_data(as_text=True)
    job = jobs.get_job(session_factory, response.get_json()["id"])
    assert job.input_name == "face.jpg" and job.options["video"] is False
    assert local_storage.get_bytes(job.input_key) == FACE.read_bytes()
    assert_problem(client.post("/v1/jobs", json={"image_url": f"{origin}/big"}), 413, "payload_too_large")
    assert_problem(client.post("/v1/jobs", json={"image_url": f"{origin}/page.html"}), 415, "unsupported_media_type")
    assert_problem(client.post("/v1/jobs", json={"image_url": f"{origin}/missing.jpg"}), 502, "fetch_failed")
    assert_problem(client.post("/v1/jobs", json={"image_url": 42}), 422, "validation_failed")
    assert_problem(client.post("/v1/jobs", json=["not", "an", "object"]), 400, "invalid_request")


@pytest.mark.parametrize("literal", ["fec0::1", "feff:ffff::1", "192.0.0.8", "192.0.0.9", "192.0.0.10", "192.0.0.255",
                                     "::ffff:192.0.0.8"])
def test_site_local_and_ietf_protocol_addresses_are_refused_by_the_guard(literal):
    """The guard function alone, on literal addresses (no resolution, no connection): Python's ipaddress calls
    these global, so they got through before."""
    assert address_refusal(ipaddress.ip_address(literal), STRICT) is not None, literal
