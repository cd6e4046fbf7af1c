"""`face3d serve`: the embedded deployment. One supervisor process runs the API server (gunicorn), a Celery worker
and the sweeper as children, beside the embedded broker, and prints one short banner once its own API answers.

Before anything starts it holds the data folder (a second start on it prints the running URL instead), cleans up
after a run that crashed (waiting for that run's children, which the kernel told to stop), and binds the API port
itself (a busy port is one clear line naming its holder and a free port to try). The socket is handed to gunicorn,
so the health check can only reach this instance's API.

Children never outlive it (api/supervised.py: the parent-death signal plus a watch). Ctrl-C or SIGTERM stops them
in order: API first, then the worker and the sweeper, then the broker. Their logs go to <data>/logs/serve.log, or
to this terminal with --verbose.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Sequence

import click
import requests

from face3d.api import supervised
from face3d.api.instance import Child, DataFolder, Instance, bind_port
from face3d.shared.errors import ErrorCode, Face3dError

if TYPE_CHECKING:
    from face3d.shared.config import Settings

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
GUNICORN_CONFIG = "face3d.api.gunicorn_conf"     # the shipped settings (API_THREADS, header and body timeouts)
LOG_FILE = Path("logs") / "serve.log"
LOG_TAIL_LINES = 15
SAMPLE = Path("examples") / "frontal.jpg"


class _Stop(Exception):
    """Raised from the SIGTERM / SIGHUP handler so the supervisor unwinds like on Ctrl-C."""


class ChildExited(Face3dError):
    code = ErrorCode.INTERNAL


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the API listens on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="Port of the API.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the database, files and embedded broker live (default: $FACE3D_DATA_DIR or ./data).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Reconstruction worker processes (each loads its own engine).")
@click.option("-v", "--verbose", is_flag=True,
              help="Show the children's logs in this terminal instead of <data-dir>/logs/serve.log.")
def serve(host: str, port: int, data_dir: Path | None, workers: int, verbose: bool) -> None:
    """Run the API and a worker on this machine (SQLite, local files, embedded broker unless configured)."""
    try:
        run_embedded(host=host, port=port, data_dir=data_dir, workers=workers, verbose=verbose)
    except Face3dError as error:
        click.echo(f"error: {error.code.value}: {error.message}", err=True)
        sys.exit(1)


def run_embedded(*, host: str, port: int, data_dir: Path | None, workers: int = 1, verbose: bool = False) -> None:
    from face3d.shared.config import load_settings

    settings = load_settings(data_dir=data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    folder = DataFolder(settings.data_dir)
    folder.lock()
    try:
        cleaned = folder.clean_after_crash()
        listener = bind_port(host, port)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _raise_stop)
        with ExitStack() as stack:
            stack.callback(listener.close)
            _run(stack, settings, folder, listener, public_url(host, port), workers, verbose, cleaned)
    finally:
        folder.unlock()


def _run(stack: ExitStack, settings: "Settings", folder: DataFolder, listener: socket.socket, url: str,
         workers: int, verbose: bool, cleaned: str | None) -> None:
    from face3d.shared.migrations import upgrade

    settings = _start_broker(stack, settings)
    upgrade(settings.database_url)
    _check_auth_before_start(settings)
    log_path = settings.data_dir / LOG_FILE
    log = None if verbose else _open_log(stack, log_path)
    children = _start_children(stack, settings, listener, workers, log)
    listener.close()                                    # gunicorn holds it now: it goes when the API goes
    folder.record(Instance(os.getpid(), url, str(settings.data_dir),
                           [Child(name, child.pid, _started(child.pid)) for name, child in children.items()]))
    _wait_until_healthy(url, children, None if verbose else log_path)
    click.echo(banner(url, settings, None if verbose else log_path, cleaned))
    try:
        _supervise(children, None if verbose else log_path)
    except (KeyboardInterrupt, _Stop):
        click.echo("stopping face3d ...")


def _start_broker(stack: ExitStack, settings: "Settings") -> "Settings":
    if not settings.uses_embedded_broker:
        return settings
    from face3d.shared.broker import start_embedded_broker

    broker_url, stop_broker = start_embedded_broker(settings.data_dir)
    stack.callback(stop_broker)
    return dataclasses.replace(settings, broker_url=broker_url)


def _check_auth_before_start(settings: "Settings") -> None:
    """Refuse an unsafe production start with one clear line (not a child's traceback)."""
    from face3d.api.auth import check_startup
    from face3d.shared.config import ConfigError
    from face3d.shared.db import session_factory_for

    session_factory = session_factory_for(settings.database_url)
    auth_log = logging.getLogger(check_startup.__module__)
    quiet_until = auth_log.level
    auth_log.setLevel(logging.ERROR)            # its AUTH_MODE=off warning: the banner says it once
    try:
        check_startup(settings, session_factory)
    except ConfigError as error:
        raise click.ClickException(error.message) from None
    finally:
        auth_log.setLevel(quiet_until)
        session_factory.kw["bind"].dispose()


# ---------------------------------------------------------------- the children


def child_environment(settings: "Settings") -> dict[str, str]:
    """The children read the same settings from the environment (the broker URL is the started one)."""
    env = dict(os.environ)
    env.update({
        "FACE3D_DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": settings.database_url,
        "BROKER_URL": settings.broker_url,
        "STORAGE_BACKEND": settings.storage_backend,
        "STORAGE_DIR": str(settings.storage_dir),
        "PYTHONUNBUFFERED": "1",
        supervised.SUPERVISOR_PID_ENV: str(os.getpid()),
    })
    return env


def worker_command(workers: int) -> list[str]:
    # cpu and gpu: an `hrn` job that got past the submit check (a GPU worker announced itself, then left) fails
    # with engine_unavailable here instead of waiting forever.
    # webhooks: delivery retries, ahead of batch items. batch last: with the priority queue order it only runs when
    # no interactive job waits.
    from face3d.shared.queue import SERVE_QUEUES

    return [*_face3d(), "worker", "--queues", ",".join(SERVE_QUEUES), "--concurrency", str(workers)]


def sweeper_command() -> list[str]:
    """Resends jobs the broker lost and recovers jobs of dead workers (see worker/sweeper.py)."""
    return [*_face3d(), "sweeper"]


def api_command(listener_fd: int) -> list[str]:
    """gunicorn on the socket the supervisor bound (``fd://``), so the port checked is the port served."""
    return supervised.command("gunicorn", "--config", f"python:{GUNICORN_CONFIG}", "--bind", f"fd://{listener_fd}",
                              "--workers", "1", "--graceful-timeout", "10", "face3d.api.app:create_app()")


def _face3d() -> list[str]:
    return supervised.command("face3d.shared.cli")


def _start_children(stack: ExitStack, settings: "Settings", listener: socket.socket, workers: int,
                    log: IO[bytes] | None) -> dict[str, subprocess.Popen]:
    env = child_environment(settings)
    children: dict[str, subprocess.Popen] = {}
    for name, command, fds in (("worker", worker_command(workers), ()), ("sweeper", sweeper_command(), ()),
                               ("api", api_command(listener.fileno()), (listener.fileno(),))):
        children[name] = _start(command, env, log, fds)
        stack.callback(stop_process, children[name], name)     # unwound last-in first-out: the API stops first
    return children


def _start(command: Sequence[str], env: dict[str, str], log: IO[bytes] | None,
           pass_fds: Sequence[int] = ()) -> subprocess.Popen:
    """A child in its own session (Ctrl-C reaches only the supervisor), in this process's folder."""
    return subprocess.Popen(list(command), env=env, start_new_session=True, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT if log else None, pass_fds=tuple(pass_fds))


def _started(pid: int) -> float:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def _open_log(stack: ExitStack, path: Path) -> IO[bytes]:
    path.parent.mkdir(parents=True, exist_ok=True)
    log = stack.enter_context(path.open("ab"))
    log.write(f"\n=== face3d serve (pid {os.getpid()}) started {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
    log.flush()
    return log


def stop_process(process: subprocess.Popen, name: str) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        click.echo(f"{name} did not stop within {STOP_TIMEOUT_S:.0f} s; killing it", err=True)
        process.kill()
        process.wait()


def _wait_until_healthy(url: str, children: dict[str, subprocess.Popen], log_path: Path | None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        _check_alive(children, log_path, "while starting")
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise ChildExited(f"the API did not answer on {url} within {STARTUP_TIMEOUT_S:.0f} s" + _log_hint(log_path))


def _supervise(children: dict[str, subprocess.Popen], log_path: Path | None) -> None:
    while True:
        _check_alive(children, log_path, "")
        time.sleep(0.5)


def _check_alive(children: dict[str, subprocess.Popen], log_path: Path | None, when: str) -> None:
    for name, child in children.items():
        if child.poll() is not None:
            raise ChildExited(f"the {name} exited with status {child.returncode}{' ' + when if when else ''}; "
                              "face3d stopped" + _log_hint(log_path))


def _log_hint(log_path: Path | None) -> str:
    if log_path is None or not log_path.exists():
        return ""
    tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    return f". The last lines of {log_path}:\n" + "\n".join(f"  | {line}" for line in tail)


def _raise_stop(_signum: int, _frame: object) -> None:
    raise _Stop()


# ---------------------------------------------------------------- the banner


def public_url(host: str, port: int) -> str:
    """The API's URL from this machine (a wildcard address is reached through loopback)."""
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host) or (f"[{host}]" if ":" in host
                                                                                 else host)
    return f"http://{shown}:{port}"


def banner(url: str, settings: "Settings", log_path: Path | None, cleaned: str | None) -> str:
    """What a person needs, in five lines: where it runs, where its data and logs are, the auth mode, and a curl
    that works as printed (with the Authorization header when keys are on)."""
    auth = ("on: every /v1 request needs 'Authorization: Bearer <key>' (face3d keys create --data-dir "
            f"{settings.data_dir})" if settings.auth_mode == "on" else
            "off: anyone who can reach this port can submit and read every job (AUTH_MODE=on to require keys)")
    header = ' -H "Authorization: Bearer $FACE3D_API_KEY"' if settings.auth_mode == "on" else ""
    lines = [f"face3d is running at {url}  (Ctrl-C stops it; the web page: {url}/)",
             f"  data:  {settings.data_dir}" + (f"   logs: {log_path}" if log_path else ""),
             f"  auth:  {auth}",
             f"  try:   curl{header} -F image=@{sample_photo()} -H 'Prefer: wait=30' {url}/v1/jobs"]
    if cleaned:
        lines.insert(1, f"  note:  {cleaned}")
    return "\n".join(lines)


def sample_photo() -> str:
    """A photo the printed curl can send as printed: the sample in this folder (a clone's root, where `make run`
    runs), else the one beside the installed package (an editable install), else a placeholder. Any JPEG, PNG or
    WebP with a face works."""
    for sample in (Path.cwd() / SAMPLE, Path(__file__).resolve().parents[1] / SAMPLE):
        if sample.is_file():
            try:
                return str(sample.resolve().relative_to(Path.cwd().resolve()))
            except ValueError:
                return str(sample)
    return "photo.jpg"
