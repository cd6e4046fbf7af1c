"""Photos in, 3D faces out, through the whole service: HTTP API, Celery worker process, database, storage.

1. The production stack: API served over HTTP, `face3d worker` as a separate process on Redis (own db number),
   PostgreSQL, and an S3 server (moto) reached through boto3 (downloads follow presigned redirects).
2. The embedded default: `face3d serve` as a subprocess (SQLite, local files, embedded broker), stopped with Ctrl-C.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest
import redis
import requests
import trimesh

from face3d.client.http import Face3dClient
from face3d.api.serve import worker_command
from tests.api.fakes import LiveServer
from tests.conftest import free_port, real_stack_env, redis_url_with_offset

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
JOB_TIMEOUT_S = 120
PHOTOS = {                  # name -> (options, expected state, faces or error code)
    "a_frontal_obama.jpg": ({"max_faces": 2}, "succeeded", 1),
    "c_group_t1_six.jpg": ({"video": False}, "succeeded", 6),
    "f_noface_grass.jpg": ({}, "failed", "no_face_detected"),
}


def run_photos(client: Face3dClient, faces_dir: Path, outdir: Path) -> None:
    """Submit the three photos, wait for each, check the outcome and every downloaded file."""
    submitted = {name: client.submit(faces_dir / name, options) for name, (options, _, _) in PHOTOS.items()}
    for name, job in submitted.items():
        _, expected_state, expected = PHOTOS[name]
        finished = client.wait(job.id, timeout=JOB_TIMEOUT_S)
        assert finished.state.value == expected_state, (name, finished.error)
        if expected_state == "failed":
            assert finished.error is not None and finished.error.code == expected
            continue
        assert len(finished.faces) == expected
        check_downloads(client.download(job.id, outdir / name), expected)


def check_downloads(paths: list[Path], faces: int) -> None:
    by_name = {path.name: path for path in paths}
    document = json.loads(by_name["result.json"].read_text())
    assert len(document["faces"]) == faces
    for index in range(faces):
        glb = trimesh.load(by_name[f"face_{index}.glb"], force="mesh")
        obj = trimesh.load(by_name[f"face_{index}.obj"], force="mesh")
        for mesh in (glb, obj):
            assert len(mesh.vertices) > 100 and len(mesh.faces) > 100
    assert by_name["vis.png"].read_bytes().startswith(b"\x89PNG")


def _wait_for(url: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"process exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@pytest.fixture(scope="module")
def stack_env(postgres_url: str, redis_url: str, s3_server: str, tmp_path_factory) -> Iterator[dict[str, str]]:
    from face3d.shared.migrations import upgrade

    upgrade(postgres_url)
    broker_url = redis_url_with_offset(2)  # its own db: no other test's worker may take these jobs
    redis.Redis.from_url(broker_url).flushdb()
    env = real_stack_env(database_url=postgres_url, broker_url=broker_url, s3_endpoint=s3_server, s3_prefix="e2e/",
                         data_dir=tmp_path_factory.mktemp("e2e-data"))
    yield env
    redis.Redis.from_url(broker_url).flushdb()


@pytest.fixture(scope="module")
def worker_process(stack_env: dict[str, str], tmp_path_factory) -> Iterator[subprocess.Popen]:
    log = tmp_path_factory.mktemp("e2e-worker") / "worker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(worker_command(1), env=stack_env, cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    yield process
    assert _stop(process) is not None
    print(log.read_text()[-2000:])


def test_real_stack_postgres_redis_s3(stack_env, worker_process, faces_dir, tmp_path):
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings

    app = create_app(load_settings(env=stack_env))
    with LiveServer(app) as url:
        client = Face3dClient(url, timeout=30)
        assert requests.get(f"{url}/readyz", timeout=10).json()["status"] == "ok"
        run_photos(client, faces_dir, tmp_path)
        job = client.list(state="succeeded", limit=1).items[0]
        redirect = requests.get(job.artifacts[0].url, allow_redirects=False, timeout=10)
        assert redirect.status_code == 302 and redirect.headers["Location"].startswith(stack_env["S3_ENDPOINT_URL"])
    assert worker_process.poll() is None


def test_embedded_default_with_face3d_serve(faces_dir, tmp_path):
    port, data_dir, log = free_port(), tmp_path / "data", tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "BROKER_URL", "STORAGE_BACKEND")}
    command = [sys.executable, "-c", "import sys; from face3d.shared.cli import main; sys.exit(main())", "serve",
               "--port", str(port), "--data-dir", str(data_dir)]
    with log.open("wb") as out:
        serve = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_for(f"{url}/readyz", serve, log)
        run_photos(Face3dClient(url, timeout=30), faces_dir, tmp_path / "out")
    finally:
        code = _stop(serve, signal.SIGINT)
    output = log.read_text()
    assert code == 0, output[-3000:]
    assert f"curl -F image=@examples/frontal.jpg -H 'Prefer: wait=30' {url}/v1/jobs" in output
    assert (data_dir / "logs" / "serve.log").is_file()    # the children's logs, not the terminal
    assert "stopping face3d" in output
    assert not (data_dir / "broker" / "url").exists()     # the embedded broker was stopped too
    assert (data_dir / "face3d.db").exists()
