"""The sweeper: the database is the source of truth, so every so often it finds jobs the queue lost and repairs them.

- ``queued`` longer than QUEUED_RESEND_AFTER_S: the message may be gone (a broker restarted without persistence, a
  send that failed after the commit). Waiting long behind a backlog is normal too, so age alone proves nothing: jobs
  are resent (single jobs with send_job, batch items through the batch path, `JobQueue.send_items`, the batch task
  that reads s3:// sources) only as many as the broker lacks: for each queue, the database's queued jobs bound for it
  minus the messages waiting in it (QUEUED_RESEND_AFTER_S-old jobs, oldest first — after a broker restart the
  oldest are the ones it lost). A full queue means no resend at all; an empty queue with queued jobs means they are
  all resent. That keeps the default delay short (seconds) without flooding a long queue. A few duplicates
  (messages a worker has fetched but not yet started) are harmless: the task ignores them (mark_running is
  conditional) and each job is resent at most once per period.
- ``running`` with no heartbeat for HEARTBEAT_TIMEOUT_S: its worker died (kill -9, OOM, lost host). Requeued and
  resent into its queue's front lane (it already waited its turn) while attempts < JOB_MAX_ATTEMPTS, else failed
  with ``worker_lost``.
- ``running`` longer than JOB_TIME_LIMIT_S + HEARTBEAT_TIMEOUT_S: the worker's own time limit did not end it
  (e.g. the solo pool has none); failed with ``timeout``.

- A batch still ``expanding`` with no progress for QUEUED_RESEND_AFTER_S: its expansion task was lost; it is sent
  again and resumes where the last page stopped (a paused expansion touches its batch, so it is left alone).
- Every ORPHAN_SWEEP_INTERVAL_S, the storage sweep (worker/storage_sweep.py) deletes files nothing references.

Jobs the sweeper fails get their webhook queued like jobs a worker finishes.
Every change is an optimistic UPDATE (state, updated_at and heartbeat_at as read), so several sweepers, or a worker
that comes back to life, never both act on one job. Run it as ``face3d sweeper`` (``face3d serve`` starts one).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

from face3d.shared import batches, db, jobs, models
from face3d.shared.config import Settings
from face3d.shared.errors import ErrorCode
from face3d.shared.queue import JobQueue, item_queue_for, queue_for
from face3d.shared.storage import Storage
from face3d.worker.storage_sweep import sweep_storage

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    resent: list[str] = field(default_factory=list)       # queued jobs whose message was sent again
    requeued: list[str] = field(default_factory=list)     # running jobs of lost workers, queued and sent again
    failed: list[str] = field(default_factory=list)       # lost too often (worker_lost) or overdue (timeout)
    send_errors: list[str] = field(default_factory=list)  # left queued; the next sweep after the resend period retries
    expansions: list[str] = field(default_factory=list)   # batches whose lost expansion was sent again

    @property
    def changed(self) -> bool:
        return bool(self.resent or self.requeued or self.failed or self.expansions)


def sweep_once(sf: db.SessionFactory, settings: Settings, queue: JobQueue,
               now: datetime | None = None, trust_silence: bool = True) -> SweepReport:
    """One sweep: find what the queue lost and repair it (see the module docstring). ``trust_silence=False``
    (just after a database outage, when no worker could write a heartbeat) leaves silent running jobs alone."""
    now = now or db.utcnow()
    report = SweepReport()
    hooked: list[str] = []                                # failed here and waiting for a webhook
    _fail_overdue(sf, settings, now, report, hooked)
    if trust_silence:
        _recover_lost(sf, settings, queue, now, report, hooked)
    _resend_queued(sf, settings, queue, now, report)
    _resend_expansions(sf, settings, queue, now, report)
    if hooked:
        queue.announce_finished(hooked)
    if report.changed or report.send_errors:
        log.warning("sweep: %s", report)
    return report


def _fail_overdue(sf: db.SessionFactory, settings: Settings, now: datetime, report: SweepReport,
                  hooked: list[str]) -> None:
    limit = timedelta(seconds=settings.job_time_limit_s + settings.heartbeat_timeout_s)
    for job in jobs.running_started_before(sf, now - limit):
        message = f"the job ran longer than {settings.job_time_limit_s} s"
        if jobs.fail_lost(sf, job, ErrorCode.TIMEOUT, message, now):
            _failed(job, report, hooked)


def _recover_lost(sf: db.SessionFactory, settings: Settings, queue: JobQueue, now: datetime,
                  report: SweepReport, hooked: list[str]) -> None:
    for job in jobs.stale_running_jobs(sf, now - timedelta(seconds=settings.heartbeat_timeout_s)):
        if job.attempts >= settings.job_max_attempts:
            message = f"the worker stopped during each of {job.attempts} attempts"
            if jobs.fail_lost(sf, job, ErrorCode.WORKER_LOST, message, now):
                _failed(job, report, hooked)
        elif jobs.requeue_lost(sf, job, now):
            report.requeued.append(job.id)
            _send(queue, job, report, front=True)      # it already waited its turn once


def _failed(job: models.Job, report: SweepReport, hooked: list[str]) -> None:
    report.failed.append(job.id)
    if job.webhook_url:
        hooked.append(job.id)


def _resend_queued(sf: db.SessionFactory, settings: Settings, queue: JobQueue, now: datetime,
                   report: SweepReport) -> None:
    """Resend stale queued jobs (single jobs, then batch items) only as far as their queue lacks messages (see the
    module docstring), so a short resend delay never floods a long queue with duplicates."""
    cutoff = now - timedelta(seconds=settings.queued_resend_after_s)
    stale = [job for kind in (False, True)
             for job in jobs.queued_older_than(sf, cutoff, limit=settings.batch_chunk_size, batch_items=kind)
             if job.id not in report.requeued]
    if not stale:
        return
    waiting = _queued_per_queue(sf, settings)
    for name, bound in _group(stale, lambda job: _queue_of(settings, job)).items():
        try:
            missing = waiting.get(name, 0) - queue.depth(name)
        except Exception as exc:  # broker down: nothing can be sent either; the next sweep looks again
            log.warning("sweep: cannot count the %s queue: %s", name, exc)
            continue
        claimed = [job for job in bound[:max(0, missing)] if jobs.claim_resend(sf, job, now)]
        for job in claimed:
            if job.batch_id is None and _send(queue, job, report):
                report.resent.append(job.id)
        items = [job for job in claimed if job.batch_id is not None]
        for engine, same_engine in _group(items, lambda job: job.engine).items():
            ids = [job.id for job in same_engine]
            try:
                queue.send_items(ids, engine)
                report.resent.extend(ids)
            except Exception as exc:  # left queued; resent again after the next period
                log.warning("sweep: could not resend %d batch items: %s", len(ids), exc)
                report.send_errors.extend(ids)


def _resend_expansions(sf: db.SessionFactory, settings: Settings, queue: JobQueue, now: datetime,
                       report: SweepReport) -> None:
    for batch in batches.expanding_since(sf, now - timedelta(seconds=settings.queued_resend_after_s)):
        if batches.claim_expansion_resend(sf, batch, now):
            try:
                queue.send_expand(batch.id)
                report.expansions.append(batch.id)
            except Exception as exc:  # broker down: the claim only delays the next try by one period
                log.warning("sweep: could not resend the expansion of batch %s: %s", batch.id, exc)


def _queued_per_queue(sf: db.SessionFactory, settings: Settings) -> dict[str, int]:
    waiting: dict[str, int] = {}
    for (engine, is_item), count in jobs.queued_counts(sf).items():
        queue = _queue_name(settings, engine, is_item)
        waiting[queue] = waiting.get(queue, 0) + count
    return waiting


def _queue_of(settings: Settings, job: models.Job) -> str:
    return _queue_name(settings, job.engine, job.batch_id is not None)


def _queue_name(settings: Settings, engine: str, is_item: bool) -> str:
    return item_queue_for(settings, engine) if is_item else queue_for(settings, engine)


def _group(rows: list[models.Job], key: Callable[[models.Job], str]) -> dict[str, list[models.Job]]:
    groups: dict[str, list[models.Job]] = {}
    for job in rows:
        groups.setdefault(key(job), []).append(job)
    return groups


def _send(queue: JobQueue, job: models.Job, report: SweepReport, front: bool = False) -> bool:
    try:
        if job.batch_id is not None:
            queue.send_items([job.id], job.engine, front=front)
        else:
            queue.send_job(job.id, job.engine, front=front)
        return True
    except Exception as exc:  # broker down: the job stays queued in the database and is resent later
        log.warning("sweep: could not send job %s: %s", job.id, exc)
        report.send_errors.append(job.id)
        return False


def run_sweeper(sf: db.SessionFactory, settings: Settings, queue: JobQueue, stop: threading.Event,
                interval_s: float | None = None, on_sweep: Callable[[SweepReport], None] | None = None,
                storage: Storage | None = None) -> None:
    """Sweep every ``interval_s`` until ``stop`` is set, and ``storage`` every ORPHAN_SWEEP_INTERVAL_S; an outage
    (database, broker, storage) only skips a round."""
    interval_s = interval_s or settings.sweeper_interval_s
    next_storage_sweep = blind_until = time.monotonic()
    while not stop.is_set():
        try:
            report = sweep_once(sf, settings, queue, trust_silence=time.monotonic() >= blind_until)
            if on_sweep is not None:
                on_sweep(report)
            if storage is not None and time.monotonic() >= next_storage_sweep:
                next_storage_sweep = time.monotonic() + settings.orphan_sweep_interval_s
                sweep_storage(sf, settings, storage)
        except Exception as exc:
            # Most likely the database is down for the workers too: their heartbeats resume only once it is back,
            # so a silence is no sign of a dead worker until HEARTBEAT_TIMEOUT_S after that.
            blind_until = time.monotonic() + settings.heartbeat_timeout_s + interval_s
            log.warning("sweep failed, retrying in %.0f s: %s", interval_s, exc)
        stop.wait(interval_s)
