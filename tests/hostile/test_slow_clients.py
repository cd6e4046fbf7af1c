"""Two slow clients cannot take the shipped API down. Real gunicorn runs the Dockerfile's own command (its CMD, with
the bind moved to 127.0.0.1 and a free port) while two slowloris connections trickle headers and two uploads
trickle their bodies; /healthz must keep answering in under a second. Then the header deadline and the body
timeout end such clients, and `Prefer: wait` is bounded per process."""
from __future__ import annotations

import json
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import free_port
from tests.serving import clean_env

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "Dockerfile"


def shipped_command(port: int) -> list[str]:
    """The Dockerfile's CMD, bound to 127.0.0.1:port instead of every interface."""
    line = next(line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD "))
    command = json.loads(line[4:])
    assert command[0] == "gunicorn"
    if "--bind" in command:
        command[command.index("--bind") + 1] = f"127.0.0.1:{port}"
    return [sys.executable, "-m", "gunicorn", *command[1:]]


@pytest.fixture
def shipped_api(tmp_path) -> Iterator:
    def start(**env: str) -> str:
        port = free_port()
        environment = clean_env(FACE3D_DATA_DIR=str(tmp_path / "data"), BROKER_URL="redis://127.0.0.1:1/0",
                                API_BIND=f"127.0.0.1:{port}", **env)
        log = (tmp_path / "gunicorn.log").open("wb")
        process = subprocess.Popen(shipped_command(port), cwd=ROOT, env=environment, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"{url}/healthz", timeout=2).status == 200:
                    return url
            except OSError:
                time.sleep(0.2)
        raise AssertionError((tmp_path / "gunicorn.log").read_text(errors="replace")[-3000:])

    started: list[subprocess.Popen] = []
    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Trickler(threading.Thread):
    """A client that sends ``head`` and then one byte of ``drip`` every ``every_s`` until told to stop."""

    def __init__(self, url: str, head: bytes, drip: bytes, every_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.head, self.drip, self.every_s = head, drip, every_s
        self.stop = threading.Event()
        self.cut_after_s: float | None = None      # when the server answered or hung up on us
        self.reply: bytes | None = None

    def run(self) -> None:
        started = time.monotonic()
        try:
            self.sock.sendall(self.head)
            for byte in self.drip:
                if self._server_answered(self.every_s) or self.stop.is_set():
                    break
                self.sock.sendall(bytes([byte]))
        except (OSError, ValueError):
            pass
        if self.reply is not None or not self.stop.is_set():
            self.cut_after_s = time.monotonic() - started

    def _server_answered(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the server to answer or hang up (what a slow client notices)."""
        readable, _, _ = select.select([self.sock], [], [], timeout_s)
        if not readable:
            return False
        try:
            self.reply = self.sock.recv(4096)
        except OSError:
            self.reply = b""
        return True

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


def slowloris(url: str) -> Trickler:
    return Trickler(url, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: " + b"a" * 200)


def slow_upload(url: str) -> Trickler:
    head = (b"POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=XX\r\n"
            b"Content-Length: 100000\r\n\r\n")
    return Trickler(url, head, b"--XX\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n"
                    + bytes(200))


def healthz_s(url: str) -> float:
    started = time.monotonic()
    try:
        assert urllib.request.urlopen(f"{url}/healthz", timeout=5).status == 200
    except OSError:
        return 5.0
    return time.monotonic() - started


def test_two_slowloris_and_two_slow_uploads_leave_healthz_answering_fast(shipped_api):
    url = shipped_api()
    clients = [slowloris(url), slowloris(url), slow_upload(url), slow_upload(url)]
    for client in clients:
        client.start()
    try:
        time.sleep(1.5)                         # every slow client holds whatever it can hold by now
        timings = []
        for _ in range(8):
            timings.append(healthz_s(url))
            time.sleep(0.5)
    finally:
        for client in clients:
            client.close()
    assert max(timings) < 1.0, f"/healthz took {max(timings):.2f} s with 4 slow clients (all: {timings})"


def test_the_header_deadline_and_the_body_timeout_end_slow_clients(shipped_api):
    url = shipped_api(API_HEADER_TIMEOUT_S="2", API_BODY_TIMEOUT_S="2")
    loris, upload = slowloris(url), Trickler(url, slow_upload(url).head, b"--XX", every_s=30)
    for client in (loris, upload):
        client.start()
    try:
        for client in (loris, upload):
            client.join(timeout=8)
            assert client.cut_after_s is not None and client.cut_after_s < 6, f"the server kept {client.head[:20]!r}"
    finally:
        for client in (loris, upload):
            client.close()
    assert loris.reply == b""                                   # hung up on, nothing said
    status = (upload.reply or b"").split(b" ", 2)[1:2]
    assert status in ([b"400"], [b"408"]) and b"application/problem+json" in upload.reply, upload.reply


def test_prefer_wait_is_bounded_and_over_the_bound_answers_at_once(tmp_path, session_factory, local_storage):
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings
    from tests.api.fakes import post_photo
    from tests.stubs import RecordingQueue

    settings = load_settings(env={}, data_dir=tmp_path / "data", max_concurrent_waits=1)
    app = create_app(settings, session_factory=session_factory, storage=local_storage, queue=RecordingQueue())
    photo = (ROOT / ".." / "shared" / "faces" / "g_grayscale_hopper.jpg").read_bytes()
    job_id = post_photo(app.test_client(), photo).get_json()["id"]
    holder = threading.Thread(target=lambda: app.test_client().get(f"/v1/jobs/{job_id}",
                                                                  headers={"Prefer": "wait=3"}), daemon=True)
    holder.start()
    time.sleep(0.5)                     # the one allowed wait is in progress
    started = time.monotonic()
    response = app.test_client().get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=3"})
    assert time.monotonic() - started < 1 and response.status_code == 200
    assert "Preference-Applied" not in response.headers
    holder.join()
    waited = app.test_client().get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=1"})
    assert waited.headers["Preference-Applied"] == "wait=1"
