"""The worker commands: `face3d worker` (a Celery worker consuming the given queues) and `face3d sweeper`."""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
from typing import TYPE_CHECKING

import click

from face3d.shared.queue import CPU_QUEUE, SERVE_QUEUES

if TYPE_CHECKING:
    from face3d.shared.config import Settings

# The modules whose tasks a worker consumes (a sender needs only their names, from shared.queue).
TASK_MODULES = ("face3d.worker.tasks", "face3d.worker.batch_tasks", "face3d.worker.webhooks")


@click.command()
@click.option("--queues", "-Q", default=CPU_QUEUE, show_default=True,
              help=f"Comma-separated queues, in priority order: {', '.join(SERVE_QUEUES)}.")
@click.option("--concurrency", "-c", type=click.IntRange(min=1), default=None,
              help="Worker processes (default WORKER_CONCURRENCY). Each loads its own engine.")
@click.option("--pool", type=click.Choice(["prefork", "solo", "threads"]), default="prefork", show_default=True)
@click.option("--loglevel", "-l", default="info", show_default=True)
@click.option("--migrate/--no-migrate", default=False, show_default=True,
              help="Run database migrations before consuming (handy with the embedded SQLite default).")
def worker(queues: str, concurrency: int | None, pool: str, loglevel: str, migrate: bool) -> None:
    """Run a worker: takes queued jobs, reconstructs them, stores the artifacts."""
    from face3d.shared.broker import embedded_broker
    from face3d.shared.config import load_settings
    from face3d.shared.engines.hrn.gpu_worker import prepare_gpu_worker
    from face3d.shared.migrations import upgrade
    from face3d.shared.queue import QUEUES, consumed_queues

    names = [name.strip() for name in queues.split(",") if name.strip()]
    unknown = set(names) - set(QUEUES)
    if not names or unknown:
        raise click.BadParameter(f"choose from {', '.join(QUEUES)}", param_hint="--queues")
    settings = load_settings()
    try:  # the gpu queue: refuse unsafe pool options; HRN warm-up, health status, poisoned-child exit
        gpu_worker = prepare_gpu_worker(pool, concurrency or settings.worker_concurrency, names)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if migrate:
        upgrade(settings.database_url)
    _warm_up_after_fork(pool, concurrency or settings.worker_concurrency, settings.render_threads)
    argv = ["worker", "-Q", ",".join(consumed_queues(names)), "-c", str(concurrency or settings.worker_concurrency),
            "-P", pool, "-l", loglevel, "-n", f"face3d-{'-'.join(names)}-{os.getpid()}@{socket.gethostname()}",
            "--without-gossip", "--without-mingle"]
    if not settings.uses_embedded_broker:
        _run_worker(settings, argv, gpu_worker)
        return
    with embedded_broker(settings.data_dir) as broker:
        _run_worker(dataclasses.replace(settings, broker_url=broker.url), argv, gpu_worker)


def _run_worker(settings: "Settings", argv: list[str], gpu_worker: bool) -> None:
    """A GPU worker (HRN installed, consuming the gpu queue) announces GPU_ENGINES while it runs."""
    from face3d.shared.queue import JobQueue, make_celery
    from face3d.worker.heartbeat import announce_engines_while_running

    app = make_celery(settings, include=TASK_MODULES)
    if gpu_worker:
        announce_engines_while_running(JobQueue(app, settings), settings)
    app.worker_main(argv)


def _warm_up_after_fork(pool: str, processes: int, render_threads: int) -> None:
    """In each pool process, before its first job: size the job thread pool and load the compiled renderer
    (numba's cache, compiled on the first run of an install), so no job pays for it."""
    from celery.signals import worker_process_init, worker_ready

    def load() -> None:
        from face3d.shared.artifacts import render

        try:
            render.warm_up()
        except Exception:  # noqa: BLE001 - a job would load them again and report the error itself
            logging.getLogger(__name__).exception("warm-up failed; the first job loads what is missing")

    def warm_up(**_: object) -> None:
        from face3d.shared import threads

        threads.configure_threads(render_threads, processes if pool == "prefork" else 1)
        # In a thread: a first compile (a fresh install) takes seconds, longer than Celery waits for a new child.
        threading.Thread(target=load, name="face3d-render-warm-up", daemon=True).start()

    (worker_process_init if pool == "prefork" else worker_ready).connect(warm_up, weak=False)


@click.command()
@click.option("--interval", type=click.FloatRange(min=0.1), default=None,
              help="Seconds between sweeps (default SWEEPER_INTERVAL_S).")
@click.option("--once", is_flag=True, help="Sweep once, print what was repaired, and exit.")
def sweeper(interval: float | None, once: bool) -> None:
    """Repair jobs the queue lost: resend stale queued jobs, requeue or fail jobs of dead workers; delete stored
    files nothing references."""
    from face3d.shared.config import load_settings
    from face3d.shared.db import session_factory_for
    from face3d.shared.errors import Face3dError
    from face3d.shared.queue import JobQueue
    from face3d.shared.storage import make_storage
    from face3d.worker.storage_sweep import sweep_storage
    from face3d.worker.sweeper import run_sweeper, sweep_once

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings()
    sf = session_factory_for(settings.database_url)
    try:
        queue = JobQueue.from_settings(settings)
    except Face3dError as error:
        raise click.ClickException(f"{error.code.value}: {error.message}") from None
    storage = make_storage(settings)
    if once:
        click.echo(str(sweep_once(sf, settings, queue)))
        click.echo(str(sweep_storage(sf, settings, storage)))
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"sweeper running every {interval or settings.sweeper_interval_s:g} s")
    run_sweeper(sf, settings, queue, stop, interval, storage=storage)


if __name__ == "__main__":
    worker()
