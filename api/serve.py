"""`face3d serve`: the embedded deployment. One supervisor process runs the API server, a Celery worker and the
sweeper as children (each in its own session, so Ctrl-C reaches only the supervisor, which stops them in order:
API first, then the worker and the sweeper, then the embedded broker)."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import click
import requests

from face3d.shared.errors import ErrorCode, Face3dError

if TYPE_CHECKING:
    from face3d.shared.config import Settings

STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
API_THREADS = 8


class _Stop(Exception):
    """Raised from the SIGTERM handler so the supervisor unwinds like on Ctrl-C."""


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the database, files and embedded broker live (default: $FACE3D_DATA_DIR or ./data).")
@click.option("--workers", default=1, show_default=True, type=int,
              help="Reconstruction worker processes (each loads its own engine).")
def serve(host: str, port: int, data_dir: Path | None, workers: int) -> None:
    """Run the API and a worker on this machine (SQLite, local files, embedded broker unless configured)."""
    try:
        run_embedded(host=host, port=port, data_dir=data_dir, workers=workers)
    except Face3dError as error:
        click.echo(f"error: {error.code.value}: {error.message}", err=True)
        sys.exit(1)


def run_embedded(*, host: str, port: int, data_dir: Path | None, workers: int) -> None:
    from face3d.shared.config import load_settings
    from face3d.shared.migrations import upgrade

    settings = load_settings(data_dir=data_dir) if data_dir else load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _raise_stop)
    with ExitStack() as stack:
        if settings.uses_embedded_broker:
            from face3d.shared.broker import start_embedded_broker

            broker_url, stop_broker = start_embedded_broker(settings.data_dir)
            stack.callback(stop_broker)
            settings = dataclasses.replace(settings, broker_url=broker_url)
        upgrade(settings.database_url)
        _check_auth_before_start(settings)
        env = child_environment(settings)
        worker = _start(worker_command(workers), env)
        stack.callback(stop_process, worker, "worker")
        sweeper = _start(sweeper_command(), env)
        stack.callback(stop_process, sweeper, "sweeper")
        api = _start(api_command(host, port), env)
        stack.callback(stop_process, api, "api")
        url = f"http://{host}:{port}"
        _wait_until_healthy(url, (api, worker))
        click.echo(f"face3d is running at {url}  (data: {settings.data_dir}; Ctrl-C stops it)")
        click.echo(f"try:  curl -F image=@photo.jpg {url}/v1/jobs")
        try:
            _supervise((api, worker, sweeper))
        except (KeyboardInterrupt, _Stop):
            click.echo("stopping face3d ...")


def _check_auth_before_start(settings: "Settings") -> None:
    """Refuse an unsafe production start with one clear line (not a child's traceback); say loudly when auth is off."""
    from face3d.api.auth import check_startup
    from face3d.shared.config import ConfigError
    from face3d.shared.db import session_factory_for

    session_factory = session_factory_for(settings.database_url)
    try:
        check_startup(settings, session_factory)
    except ConfigError as error:
        raise click.ClickException(error.message) from None
    finally:
        session_factory.kw["bind"].dispose()
    if settings.auth_mode != "on":
        click.secho("WARNING: AUTH_MODE=off: anyone who can reach this port can submit and read every job "
                    "(set AUTH_MODE=on and create keys with `face3d keys create`)", fg="yellow", err=True)


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
    })
    return env


def worker_command(workers: int) -> list[str]:
    # cpu and gpu: without a GPU worker an `hrn` job then fails with engine_unavailable instead of waiting forever.
    # webhooks: delivery retries, ahead of batch items. batch last: with the priority queue order it only runs when
    # no interactive job waits.
    from face3d.shared.queue import SERVE_QUEUES

    return [*_face3d(), "worker", "--queues", ",".join(SERVE_QUEUES), "--concurrency", str(workers)]


def sweeper_command() -> list[str]:
    """Resends jobs the broker lost and recovers jobs of dead workers (see worker/sweeper.py)."""
    return [*_face3d(), "sweeper"]


def api_command(host: str, port: int) -> list[str]:
    try:
        import gunicorn  # noqa: F401
    except ImportError:
        return [sys.executable, "-m", "flask", "--app", "face3d.api.app:create_app()", "run", "--host", host,
                "--port", str(port), "--no-reload", "--with-threads"]
    return [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", "1",
            "--worker-class", "gthread", "--threads", str(API_THREADS), "--graceful-timeout", "10",
            "--access-logfile", "-", "face3d.api.app:create_app()"]


def _face3d() -> list[str]:
    return [sys.executable, "-c", "import sys; from face3d.shared.cli import main; sys.exit(main())"]


def _start(command: Sequence[str], env: dict[str, str]) -> subprocess.Popen:
    """A child in its own session, in this process's folder (the children import the installed face3d)."""
    return subprocess.Popen(list(command), env=env, start_new_session=True)


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


def _wait_until_healthy(url: str, children: Sequence[subprocess.Popen]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        _check_alive(children)
        try:
            if requests.get(f"{url}/healthz", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise Face3dError(f"the API did not answer on {url} within {STARTUP_TIMEOUT_S:.0f} s", ErrorCode.INTERNAL)


def _supervise(children: Sequence[subprocess.Popen]) -> None:
    while True:
        _check_alive(children)
        time.sleep(0.5)


def _check_alive(children: Sequence[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is not None:
            raise Face3dError(f"child process {' '.join(child.args[:4])} ... exited with {child.returncode}",
                              ErrorCode.INTERNAL)


def _raise_stop(_signum: int, _frame: object) -> None:
    raise _Stop()
