"""The HTTP client and the client CLI against the API served over real HTTP (fake worker)."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from face3d.client.cli import download, status, submit
from face3d.client.http import ApiError, Face3dClient, ServerUnreachable
from tests.api.fakes import LiveServer, finish_job
from tests.conftest import free_port

FILES = {"face_0.glb": b"glTF-fake", "result.json": b'{"faces": [{"index": 0}]}', "vis.png": b"\x89PNG fake"}


@pytest.fixture
def server(app, queue, session_factory, storage):
    def worker_soon(job_id: str) -> None:
        threading.Timer(0.2, finish_job, args=(session_factory, storage, job_id, FILES)).start()

    queue.on_send = worker_soon
    with LiveServer(app) as url:
        yield url


def test_submit_wait_and_download(server, faces_dir, tmp_path, queue):
    client = Face3dClient(server, timeout=10)
    job = client.submit(faces_dir / "a_frontal_obama.jpg", {"max_faces": 2, "video": False}, wait=True)
    assert job.state.value == "succeeded" and len(job.faces) == 1
    assert queue.sent == [(job.id, "cpu")]
    assert client.get(job.id).options["max_faces"] == 2
    paths = client.download(job.id, tmp_path / "out")
    assert {p.name: p.read_bytes() for p in paths} == FILES
    page = client.list(limit=10)
    assert [item.id for item in page.items] == [job.id]


def test_client_raises_typed_errors(server):
    client = Face3dClient(server, timeout=5)
    with pytest.raises(ApiError) as caught:
        client.get("no-such-job")
    assert caught.value.status == 404 and caught.value.code.value == "not_found"
    with pytest.raises(ServerUnreachable):
        Face3dClient(f"http://127.0.0.1:{free_port()}", timeout=2).get("x")


def test_cli_submit_status_download(server, faces_dir, tmp_path):
    runner = CliRunner()
    photo = str(faces_dir / "a_frontal_obama.jpg")
    result = runner.invoke(submit, [photo, "--server", server, "--wait", "--max-faces", "1", "--no-video"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].endswith(": queued") and lines[-len(FILES) - 2].endswith(": succeeded"), result.output
    assert "face 0: box (10,20)-(110,140)" in result.output
    job_id = lines[0].split()[1].rstrip(":")
    result = runner.invoke(status, [job_id, "--server", server, "--json"])
    assert result.exit_code == 0 and '"state": "succeeded"' in result.output
    result = runner.invoke(download, [job_id, "-o", str(tmp_path / "dl"), "--server", server])
    assert result.exit_code == 0
    assert sorted(Path(line).name for line in result.output.splitlines()) == sorted(FILES)
    assert {Path(line).parent for line in result.output.splitlines()} == {tmp_path / "dl" / job_id}


def test_cli_reports_errors_without_traceback(server, tmp_path):
    runner = CliRunner()
    result = runner.invoke(status, ["missing", "--server", server])
    assert result.exit_code == 1 and "error: not_found:" in result.output and "Traceback" not in result.output
    text_file = tmp_path / "notes.txt"
    text_file.write_text("hello")
    result = runner.invoke(submit, [str(text_file), "--server", server])
    assert result.exit_code == 1 and "unsupported_media_type" in result.output


class Refusing:
    """WSGI middleware: answers the first ``times`` requests matching ``method`` with ``status`` and Retry-After,
    then passes every request on; remembers each Idempotency-Key it saw."""

    def __init__(self, app, method: str, status: int, times: int, retry_after: str = "1") -> None:
        self.app, self.method, self.status, self.left, self.retry_after = app, method, status, times, retry_after
        self.keys: list[str | None] = []

    def __call__(self, environ, start_response):
        if environ["REQUEST_METHOD"] == self.method:
            self.keys.append(environ.get("HTTP_IDEMPOTENCY_KEY"))
            if self.left > 0:
                self.left -= 1
                start_response(f"{self.status} Refused", [("Content-Type", "application/problem+json"),
                                                          ("Retry-After", self.retry_after)])
                return [b'{"status": %d, "code": "rate_limited", "title": "Too Many Requests"}' % self.status]
        return self.app(environ, start_response)


@pytest.mark.parametrize("status", [429, 503])
def test_submit_honours_retry_after_with_the_same_idempotency_key(app, faces_dir, session_factory, status):
    """`submit` gave up at the first 429 (and `submit --wait` exited on it)."""
    import time

    from face3d.shared import jobs

    refusing = Refusing(app, "POST", status, times=2)
    with LiveServer(refusing) as url:
        start = time.monotonic()
        job = Face3dClient(url, timeout=10).submit(faces_dir / "a_frontal_obama.jpg")
        elapsed = time.monotonic() - start
    assert job.state.value == "queued" and elapsed >= 2.0        # Retry-After: 1, twice
    assert len(refusing.keys) == 3 and len(set(refusing.keys)) == 1 and refusing.keys[0]
    assert [row.id for row in jobs.list_jobs(session_factory, limit=10)[0]] == [job.id]


def test_wait_rides_out_429_on_its_polls(server, faces_dir, app):
    client = Face3dClient(server, timeout=10)
    job = client.submit(faces_dir / "a_frontal_obama.jpg")
    with LiveServer(Refusing(app, "GET", 429, times=2)) as url:
        assert Face3dClient(url, timeout=10).wait(job.id, timeout=30).state.value == "succeeded"


def test_submit_retries_a_refused_connection_until_the_api_is_back(app, faces_dir, session_factory):
    from werkzeug.serving import make_server

    from face3d.shared import jobs

    port = free_port()
    started: dict = {}

    def start_later() -> None:
        started["server"] = make_server("127.0.0.1", port, app, threaded=True)
        started["server"].serve_forever()

    threading.Timer(1.5, start_later).start()
    try:
        job = Face3dClient(f"http://127.0.0.1:{port}", timeout=5).submit(faces_dir / "a_frontal_obama.jpg")
    finally:
        while "server" not in started:
            threading.Event().wait(0.1)
        started["server"].shutdown()
        started["server"].server_close()
    assert [row.id for row in jobs.list_jobs(session_factory, limit=10)[0]] == [job.id]
