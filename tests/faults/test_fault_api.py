"""API-side faults: the API process restarts while a client polls (the client carries on), and an unreachable
database answers 503 database_unavailable with Retry-After (never 500)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from face3d.client.http import Face3dClient, ServerUnreachable
from tests.api.fakes import assert_problem, post_photo
from tests.conftest import free_port
from tests.faults.stack import ROOT, wait_until
from tests.service.workers import FACES
from tests.stubs import RecordingQueue

SLOW = {"video": True, "frames": 24, "render_size": 256, "texture_size": 256}


class ApiProcess:
    """The API served by `flask run` in a child process (the same app `face3d serve` starts)."""

    def __init__(self, env: dict[str, str], port: int, log_path) -> None:
        self.env, self.port, self.log_path = env, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "flask", "--app", "face3d.api.app:create_app()", "run", "--host", "127.0.0.1",
                   "--port", str(self.port), "--no-reload", "--with-threads"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **self.env},
                                            stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._healthy, 30, f"API on {self.url} answers")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def _healthy(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).ok
        except requests.RequestException:
            return False


class CountingClient(Face3dClient):
    """Remembers the transport failures wait() rode out."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.failures: list[str] = []

    def get(self, job_id: str, wait_s: int | None = None):
        try:
            return super().get(job_id, wait_s)
        except ServerUnreachable as error:
            self.failures.append(error.message)
            raise


def test_client_keeps_polling_across_an_api_restart(fault_stack, sweeper, tmp_path):
    stack = fault_stack
    worker = stack.new_worker("api-restart")
    api = ApiProcess(stack.env, free_port(), tmp_path / "api.log")
    api.start()
    outcome: dict = {}
    try:
        client = CountingClient(api.url, timeout=10)
        job = client.submit(FACES / "a_frontal_darkskin_woman.jpg", SLOW)
        poller = threading.Thread(target=lambda: outcome.update(job=client.wait(job.id, timeout=90)))
        poller.start()
        time.sleep(0.5)                     # the client is inside a long poll now
        api.kill()
        time.sleep(1.5)                     # a few refused connections
        api.start()
        poller.join(timeout=120)
    finally:
        api.kill()
        worker.stop()
    assert "job" in outcome, f"wait() raised instead of riding out the restart; worker log:\n{worker.log()}"
    assert outcome["job"].state.value == "succeeded", outcome["job"].error
    assert client.failures, "the API restart was not noticed by the client at all"


@pytest.fixture
def dead_database_app(tmp_path):
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings
    from face3d.shared.db import make_engine, make_session_factory
    from face3d.shared.storage import LocalStorage

    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/gone?connect_timeout=2"
    settings = load_settings(env={}, data_dir=tmp_path / "data", database_url=dead)
    app = create_app(settings, session_factory=make_session_factory(make_engine(dead)),
                     storage=LocalStorage(tmp_path / "storage"), queue=RecordingQueue())
    app.testing = True
    return app


def test_database_outage_is_503_with_retry_after(dead_database_app, tmp_path):
    client = dead_database_app.test_client()
    photo = (FACES / "g_grayscale_hopper.jpg").read_bytes()
    for response in (client.get("/v1/jobs/0123456789abcdef"), client.get("/v1/jobs"),
                     post_photo(client, photo, name="hopper.jpg")):
        body = assert_problem(response, 503, "database_unavailable")
        assert int(response.headers["Retry-After"]) > 0
        assert "psycopg" not in body["detail"]          # no driver internals leak
    assert not any((tmp_path / "storage").rglob("*.jpg"))   # the stored input of the failed submit was removed
