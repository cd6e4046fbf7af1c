"""What `face3d serve` keeps in its data folder so a second start can tell what is there: a lock held for as long
as the supervisor lives (``serve.lock``, released by the kernel even on kill -9), and a record of its URL and its
children (``serve.json``). A start finds one of three things: a live instance (its URL is shown), the record of a
crashed one (its children must be gone, its files are cleaned), or nothing.

The API port is bound here, before anything starts, and handed to gunicorn as an open socket: the check and the
bind are one step, so no other server can take the port in between, and the health check can only reach ours.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

from face3d.api.supervised import SUPERVISOR_PID_ENV
from face3d.shared.errors import ErrorCode, Face3dError

LOCK_FILE = "serve.lock"
STATE_FILE = "serve.json"
LEFTOVER_WAIT_S = 20.0          # children of a crashed run get SIGTERM from the kernel; give them this long to go
PORT_SEARCH = range(10, 100)    # offsets tried for a free port to suggest


class ServeRefused(Face3dError):
    """`face3d serve` did not start: the reason names what holds the data folder or the port, and the fix."""

    code = ErrorCode.CONFLICT


@dataclass
class Child:
    name: str
    pid: int
    started: float              # psutil create_time: tells a recycled pid from our process


@dataclass
class Instance:
    pid: int
    url: str
    data_dir: str
    children: list[Child] = field(default_factory=list)

    def alive_children(self) -> list[psutil.Process]:
        return [process for child in self.children if (process := same_process(child.pid, child.started))]


def same_process(pid: int, started: float) -> psutil.Process | None:
    try:
        process = psutil.Process(pid)
        return process if abs(process.create_time() - started) < 0.01 and process.is_running() else None
    except psutil.Error:
        return None


def describe(process: psutil.Process) -> str:
    try:
        return f"pid {process.pid}: {' '.join(process.cmdline())[:120]}"
    except psutil.Error:
        return f"pid {process.pid}"


class DataFolder:
    """The lock and the record of one data folder."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.lock_path, self.state_path = data_dir / LOCK_FILE, data_dir / STATE_FILE
        self._lock: int | None = None

    def lock(self) -> None:
        """Hold the folder for this process, or ServeRefused naming the instance that holds it."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            running = self.recorded()
            where = f" at {running.url} (pid {running.pid})" if running else ""
            raise ServeRefused(f"face3d is already running{where} for the data folder {self.data_dir}; open that "
                               "URL, or stop that instance (Ctrl-C in its terminal) before starting another") from None
        os.set_inheritable(fd, False)
        self._lock = fd

    def unlock(self) -> None:
        self.state_path.unlink(missing_ok=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def recorded(self) -> Instance | None:
        try:
            raw = json.loads(self.state_path.read_text())
            return Instance(**{**raw, "children": [Child(**child) for child in raw.get("children", [])]})
        except (OSError, ValueError, TypeError):
            return None

    def record(self, instance: Instance) -> None:
        temporary = self.state_path.with_suffix(f".tmp{os.getpid()}")
        temporary.write_text(json.dumps(asdict(instance)))
        os.replace(temporary, self.state_path)

    def clean_after_crash(self, wait_s: float = LEFTOVER_WAIT_S) -> str | None:
        """After a crashed run (its record is there, nobody holds the lock): wait for its children to exit, then
        remove the record. Returns a line saying what was cleaned, or ServeRefused naming the ones still alive."""
        crashed = self.recorded()
        if crashed is None:
            return None
        deadline = time.monotonic() + wait_s
        while (alive := crashed.alive_children()) and time.monotonic() < deadline:
            time.sleep(0.2)
        if alive:
            pids = " ".join(str(process.pid) for process in alive)
            raise ServeRefused("processes of an earlier face3d serve on this data folder are still running ("
                               + "; ".join(describe(process) for process in alive) + f"); stop them with `kill {pids}`")
        self.state_path.unlink(missing_ok=True)
        return f"cleaned up after the last run (pid {crashed.pid}), which did not stop cleanly"


# ---------------------------------------------------------------- the API port


def bind_port(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or ServeRefused naming who holds the port and a free one to try."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)    # as gunicorn does: TIME_WAIT is not "in use"
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServeRefused(_port_refusal(host, port, exc)) from None
    sock.set_inheritable(True)
    return sock


def _port_refusal(host: str, port: int, exc: OSError) -> str:
    if exc.errno != errno.EADDRINUSE:
        return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
    holder = port_holder(port)
    who = f" by {_who(holder)}" if holder else ""
    suggestion = free_port_near(host, port)
    fix = f"try `make run PORT={suggestion}` (or `face3d serve --port {suggestion}`)" if suggestion else \
        "pick another port with PORT= / --port"
    return f"port {port} on {host} is in use{who}; stop that process, or {fix}"


def _who(process: psutil.Process) -> str:
    """The holder of a port in words; a face3d serve child says whose it is, and an orphan says so."""
    try:
        env = process.environ()
    except psutil.Error:
        env = {}
    supervisor = env.get(SUPERVISOR_PID_ENV)
    if not supervisor:
        return describe(process)
    data_dir = env.get("FACE3D_DATA_DIR", "?")
    if psutil.pid_exists(int(supervisor)):
        return f"another face3d serve (pid {supervisor}, data folder {data_dir})"
    return (f"pid {process.pid}, left running by a face3d serve that is gone (data folder {data_dir}); "
            f"stop it with `kill {process.pid}`")


def port_holder(port: int) -> psutil.Process | None:
    """The process listening on ``port``, when this user may see it."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except psutil.Error:
        return None
    for connection in connections:
        if connection.status == psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port \
                and connection.pid:
            try:
                return psutil.Process(connection.pid)
            except psutil.Error:
                return None
    return None


def free_port_near(host: str, port: int) -> int | None:
    for offset in PORT_SEARCH:
        candidate = port + offset
        if candidate > 65535:
            return None
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, candidate))
                return candidate
            except OSError:
                continue
    return None
