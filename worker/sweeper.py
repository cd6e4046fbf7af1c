"""The sweeper: the database is the source of truth, so every so often it finds jobs the queue lost and repairs them.

- ``queued`` longer than QUEUED_RESEND_AFTER_S: the message may be gone (a broker restarted without persistence, a
  send that failed after the commit); it is sent again. The task ignores duplicates (mark_running is conditional),
  so a job whose first message was only slow still runs once.
- ``running`` with no heartbeat for HEARTBEAT_TIMEOUT_S: its worker died (kill -9, OOM, lost host). Requeued and
  resent while attempts < JOB_MAX_ATTEMPTS, else failed with ``worker_lost``.
- ``running`` longer than JOB_TIME_LIMIT_S + HEARTBEAT_TIMEOUT_S: the worker's own time limit did not end it
  (e.g. the solo pool has none); failed with ``timeout``.

Every change is an optimistic UPDATE (state, updated_at and heartbeat_at as read), so several sweepers, or a worker
that comes back to life, never both act on one job. Run it as ``face3d sweeper`` (``face3d serve`` starts one).
"""
from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

import click

from shared import models
from shared.config import Settings
from shared.errors import ErrorCode

log = logging.getLogger(__name__)
Send = Callable[[str, str], None]          # (job_id, engine); raises when the broker is unreachable


@dataclass
class SweepReport:
    resent: list[str] = field(default_factory=list)       # queued jobs whose message was sent again
    requeued: list[str] = field(default_factory=list)     # running jobs of lost workers, queued and sent again
    failed: list[str] = field(default_factory=list)       # lost too often (worker_lost) or overdue (timeout)
    send_errors: list[str] = field(default_factory=list)  # left queued; the next sweep after the resend period retries

    @property
    def changed(self) -> bool:
        return bool(self.resent or self.requeued or self.failed)


def sweep_once(sf: models.SessionFactory, settings: Settings, send: Send, now: datetime | None = None) -> SweepReport:
    now = now or models.utcnow()
    report = SweepReport()
    _fail_overdue(sf, settings, now, report)
    _recover_lost(sf, settings, send, now, report)
    _resend_queued(sf, settings, send, now, report)
    if report.changed or report.send_errors:
        log.warning("sweep: %s", report)
    return report


def _fail_overdue(sf: models.SessionFactory, settings: Settings, now: datetime, report: SweepReport) -> None:
    limit = timedelta(seconds=settings.job_time_limit_s + settings.heartbeat_timeout_s)
    for job in models.running_started_before(sf, now - limit):
        message = f"the job ran longer than {settings.job_time_limit_s} s"
        if models.fail_lost(sf, job, ErrorCode.TIMEOUT, message, now):
            report.failed.append(job.id)


def _recover_lost(sf: models.SessionFactory, settings: Settings, send: Send, now: datetime,
                  report: SweepReport) -> None:
    for job in models.stale_running_jobs(sf, now - timedelta(seconds=settings.heartbeat_timeout_s)):
        if job.attempts >= settings.job_max_attempts:
            message = f"the worker stopped during each of {job.attempts} attempts"
            if models.fail_lost(sf, job, ErrorCode.WORKER_LOST, message, now):
                report.failed.append(job.id)
        elif models.requeue_lost(sf, job, now):
            report.requeued.append(job.id)
            _send(send, job, report)


def _resend_queued(sf: models.SessionFactory, settings: Settings, send: Send, now: datetime,
                   report: SweepReport) -> None:
    for job in models.queued_older_than(sf, now - timedelta(seconds=settings.queued_resend_after_s)):
        if job.id not in report.requeued and models.claim_resend(sf, job, now):
            report.resent.append(job.id)
            _send(send, job, report)


def _send(send: Send, job: models.Job, report: SweepReport) -> None:
    try:
        send(job.id, job.engine)
    except Exception as exc:  # broker down: the job stays queued in the database and is resent later
        log.warning("sweep: could not send job %s: %s", job.id, exc)
        report.send_errors.append(job.id)


def run_sweeper(sf: models.SessionFactory, settings: Settings, send: Send, stop: threading.Event,
                interval_s: float | None = None, on_sweep: Callable[[SweepReport], None] | None = None) -> None:
    """Sweep every ``interval_s`` until ``stop`` is set; an outage (database, broker) only skips a round."""
    interval_s = interval_s or settings.sweeper_interval_s
    while not stop.is_set():
        try:
            report = sweep_once(sf, settings, send)
            if on_sweep is not None:
                on_sweep(report)
        except Exception as exc:
            log.warning("sweep failed, retrying in %.0f s: %s", interval_s, exc)
        stop.wait(interval_s)


def celery_sender(settings: Settings) -> Send:
    from worker.celery_app import make_celery
    from worker.dispatch import send_job

    app = make_celery(settings)
    return lambda job_id, engine: send_job(app, job_id, engine)


@click.command()
@click.option("--interval", type=click.FloatRange(min=0.1), default=None,
              help="Seconds between sweeps (default SWEEPER_INTERVAL_S).")
@click.option("--once", is_flag=True, help="Sweep once, print what was repaired, and exit.")
def sweeper(interval: float | None, once: bool) -> None:
    """Repair jobs the queue lost: resend stale queued jobs, requeue or fail jobs of dead workers."""
    from shared.config import load_settings
    from shared.db import make_engine, make_session_factory

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from shared.errors import Face3dError

    settings = load_settings()
    sf = make_session_factory(make_engine(settings.database_url))
    try:
        send = celery_sender(settings)
    except Face3dError as error:
        raise click.ClickException(f"{error.code.value}: {error.message}") from None
    if once:
        click.echo(str(sweep_once(sf, settings, send)))
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"sweeper running every {interval or settings.sweeper_interval_s:g} s")
    run_sweeper(sf, settings, send, stop, interval)
