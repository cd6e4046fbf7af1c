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
