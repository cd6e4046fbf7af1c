"""`face3d submit/status/download/ingest --api-key` (or $FACE3D_API_KEY) against an AUTH_MODE=on API over real HTTP."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from face3d.client.cli import download, status, submit
from face3d.client.cli import ingest
from tests.api.fakes import LiveServer, finish_job

FILES = {"face_0.glb": b"glTF-fake", "result.json": b'{"faces": []}'}
NO_ENV_KEY = {"FACE3D_API_KEY": None}        # whatever the caller's shell has, these runs start without a key


@pytest.fixture
def server(make_app, session_factory, local_storage):
    app = make_app()
    queue = app.extensions["face3d"].queue

    def worker_soon(job_id: str) -> None:
        threading.Timer(0.1, finish_job, args=(session_factory, local_storage, job_id, FILES)).start()

    queue.on_send = worker_soon
    with LiveServer(app) as url:
        yield url


def run(command, *args: str, env: dict | None = None):
    return CliRunner().invoke(command, list(args), env={**NO_ENV_KEY, **(env or {})})


def test_submit_without_a_key_is_unauthorized(server, obama_path):
    result = run(submit, str(obama_path), "--server", server)
    assert result.exit_code == 1 and "error: unauthorized:" in result.output and "Traceback" not in result.output
    result = run(submit, str(obama_path), "--server", server, "--api-key", "f3d_not-a-real-key")
    assert result.exit_code == 1 and "error: unauthorized:" in result.output


def test_api_key_flag_and_env_reach_the_server(server, callers, obama_path, tmp_path):
    result = run(submit, str(obama_path), "--server", server, "--api-key", callers.a.token, "--wait", "--json")
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)             # the job id and progress went to stderr
    assert job["state"] == "succeeded"

    result = run(status, job["id"], "--server", server, env={"FACE3D_API_KEY": callers.a.token})
    assert result.exit_code == 0 and result.output.startswith(f"job {job['id']}: succeeded"), result.output
    result = run(status, job["id"], "--server", server, "--api-key", callers.b.token)
    assert result.exit_code == 1 and "error: not_found:" in result.output      # another key's job stays hidden

    result = run(download, job["id"], "-o", str(tmp_path / "out"), "--server", server, "--api-key", callers.a.token)
    assert result.exit_code == 0, result.output
    assert {Path(line).name: Path(line).read_bytes() for line in result.output.splitlines()} == FILES
    result = run(download, job["id"], "-o", str(tmp_path / "none"), "--server", server)
    assert result.exit_code == 1 and "error: unauthorized:" in result.output


def test_ingest_api_key(server, callers, obama_path, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(obama_path.read_bytes())
    out = tmp_path / "results.jsonl"
    result = run(ingest, str(folder), "--server", server, "-o", str(out), "--no-progress")
    assert result.exit_code == 1 and "unauthorized" in result.output

    result = run(ingest, str(folder), "--server", server, "-o", str(tmp_path / "ok.jsonl"), "--no-progress",
                 "--api-key", callers.a.token, "--timeout", "30")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (tmp_path / "ok.jsonl").read_text().splitlines()]
    assert [(line["name"], line["state"]) for line in lines] == [("a.jpg", "succeeded")]


@pytest.fixture(scope="session")
def obama_path(faces_dir: Path) -> Path:
    return faces_dir / "a_frontal_obama.jpg"
