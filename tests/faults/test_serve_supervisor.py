"""`face3d serve` as its supervisor: a busy port is refused before anything starts, a second start on the same data
folder prints the running URL, its children die with it (kill -9 of the supervisor) and a restart after that cleans
up and finishes every job; an orphan holding the port is named. Only 127.0.0.1, free ports and temporary data
folders; only processes these tests started are stopped."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import psutil
import pytest

from face3d.api.instance import Child, DataFolder, Instance, ServeRefused
from face3d.client.http import Face3dClient
from tests.conftest import free_port
from tests.infra.layering import ROOT
from tests.serving import RUNNING, ServeProcess, clean_env, kill_all, serve_command

EXAMPLES = ROOT / "examples"
FAST = {"video": False, "texture_size": 256}
JOBS = 6


class _AlwaysHealthy(BaseHTTPRequestHandler):
    """Another server on the port that answers 200 to everything, /healthz included (the old serve's health check
    took it for its own API and printed "running")."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, *args: object) -> None:
        pass


def test_a_busy_port_is_refused_before_anything_starts(tmp_path):
    holder = HTTPServer(("127.0.0.1", 0), _AlwaysHealthy)
    threading.Thread(target=holder.serve_forever, daemon=True).start()
    port = holder.server_address[1]
    try:
        serve = ServeProcess(serve_command(port, tmp_path / "data"), tmp_path / "out.txt").start()
        code = serve.wait_exit(timeout=60)
    finally:
        holder.shutdown()
        holder.server_close()
    assert code != 0
    text = serve.text
    assert f"port {port} on 127.0.0.1 is in use by pid {os.getpid()}" in text, text
    assert "try `make run PORT=" in text and "`face3d serve --port " in text
    assert RUNNING not in text and "Traceback" not in text
    assert not (tmp_path / "data" / "broker").exists()                 # no broker, no child was started
    assert not (tmp_path / "data" / "face3d.db").exists()


def test_second_start_prints_the_url_then_kill_9_leaves_no_child_and_a_restart_finishes_every_job(tmp_path):
    port, data = free_port(), tmp_path / "data"
    first = ServeProcess(serve_command(port, data), tmp_path / "first.txt").start()
    started: list[psutil.Process] = []
    try:
        url = first.wait_running()
        assert url == f"http://127.0.0.1:{port}"
        second = ServeProcess(serve_command(free_port(), data), tmp_path / "second.txt").start()
        assert second.wait_exit(timeout=30) == 1
        assert f"face3d is already running at {url} (pid {first.process.pid})" in second.text, second.text
        assert RUNNING not in second.text

        client = Face3dClient(url, timeout=10)
        photos = [EXAMPLES / ("group.jpg" if n % 2 else "frontal.jpg") for n in range(JOBS)]
        job_ids = [client.submit(photo, FAST).id for photo in photos]
        _wait_until(lambda: any(client.get(job_id).state.value == "running" for job_id in job_ids), 60)
        started = first.tree()
        assert len(started) >= 6                 # supervisor, broker, worker (+ pool), sweeper, gunicorn (+ worker)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        _wait_until(lambda: not [p for p in started[1:] if _alive(p)], 40,
                    lambda: f"still running: {[p.pid for p in started[1:] if _alive(p)]}")
        assert (data / "serve.json").exists()                           # what the crashed run left

        again = ServeProcess(serve_command(port, data), tmp_path / "again.txt").start()
        try:
            assert again.wait_running() == url
            assert "cleaned up after the last run" in again.text
            finished = [client.wait(job_id, timeout=120) for job_id in job_ids]
            assert [job.state.value for job in finished] == ["succeeded"] * JOBS, [
                (job.id, job.state.value, job.error) for job in finished]
        finally:
            restarted = again.tree() if again.process.poll() is None else []
            assert again.stop() == 0, again.text[-3000:]
            kill_all(restarted)
    finally:
        started = started or (first.tree() if first.process.poll() is None else [])
        first.stop(signal.SIGKILL)
        kill_all(started)


def test_an_orphan_holding_the_port_is_named(tmp_path):
    """A process that looks like an API child of a face3d serve that is gone (its supervisor pid is dead)."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    port = free_port()
    orphan_code = ("import socket, time; s = socket.socket(); s.bind(('127.0.0.1', %d)); s.listen(); "
                   "print('listening', flush=True); time.sleep(60)" % port)
    orphan = subprocess.Popen([sys.executable, "-c", orphan_code], stdout=subprocess.PIPE, text=True,
                              env=clean_env(FACE3D_SUPERVISOR_PID=str(dead.pid), FACE3D_DATA_DIR=str(tmp_path)))
    try:
        assert orphan.stdout.readline().strip() == "listening"
        serve = ServeProcess(serve_command(port, tmp_path / "data"), tmp_path / "out.txt").start()
        assert serve.wait_exit(timeout=60) == 1
        assert (f"pid {orphan.pid}, left running by a face3d serve that is gone (data folder {tmp_path}); "
                f"stop it with `kill {orphan.pid}`") in serve.text, serve.text
    finally:
        orphan.kill()
        orphan.wait()


def test_leftover_children_of_a_crashed_run_are_waited_for_then_named(tmp_path):
    leftover = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        folder = DataFolder(tmp_path)
        started = psutil.Process(leftover.pid).create_time()
        folder.record(Instance(pid=999999, url="http://127.0.0.1:1", data_dir=str(tmp_path),
                               children=[Child("worker", leftover.pid, started)]))
        with pytest.raises(ServeRefused) as refused:
            folder.clean_after_crash(wait_s=0.5)
        assert f"pid {leftover.pid}" in refused.value.message and f"kill {leftover.pid}" in refused.value.message
        leftover.kill()
        leftover.wait()
        assert "cleaned up after the last run (pid 999999)" in folder.clean_after_crash(wait_s=0.5)
        assert not (tmp_path / "serve.json").exists()
        folder.record(Instance(pid=1, url="u", data_dir="d", children=[Child("api", os.getpid(), 1.0)]))
        assert folder.clean_after_crash(wait_s=0.1)    # a recycled pid (another start time) is not a leftover
    finally:
        leftover.kill()
        leftover.wait()


def test_the_banner_has_the_url_data_folder_auth_mode_and_a_curl_that_works(tmp_path):
    from face3d.api.serve import banner
    from face3d.shared.config import load_settings

    url = "http://127.0.0.1:8123"
    open_banner = banner(url, load_settings(env={"AUTH_MODE": "off"}, data_dir=tmp_path), tmp_path / "s.log", None)
    lines = open_banner.splitlines()
    assert lines[0].startswith(f"face3d is running at {url}") and len(lines) == 4
    assert f"data:  {tmp_path}" in open_banner and "auth:  off" in open_banner
    assert f"curl -F image=@examples/frontal.jpg -H 'Prefer: wait=30' {url}/v1/jobs" in open_banner
    keyed = banner(url, load_settings(env={"AUTH_MODE": "on"}, data_dir=tmp_path), None, None)
    assert "auth:  on" in keyed
    assert 'curl -H "Authorization: Bearer $FACE3D_API_KEY" -F image=@examples/frontal.jpg' in keyed


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_until(condition, timeout: float, describe=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"not within {timeout} s {describe()}")


def test_the_record_of_a_run_is_json_a_person_can_read(tmp_path):
    folder = DataFolder(tmp_path)
    folder.record(Instance(pid=5, url="http://127.0.0.1:9", data_dir=str(tmp_path), children=[Child("api", 6, 1.5)]))
    assert json.loads((tmp_path / "serve.json").read_text())["children"] == [{"name": "api", "pid": 6,
                                                                              "started": 1.5}]
