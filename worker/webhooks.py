"""Webhook delivery from the workers: every attempt is a task on the ``webhooks`` queue, the first one queued at the
job's finish point (JobTask), later ones retried with a growing countdown until WEBHOOK_MAX_ATTEMPTS. Never inside a
job task: a slow or hostile receiver then holds no engine worker, only a delivery (one total deadline,
WEBHOOK_TIMEOUT_S, and a capped reply, shared/webhooks.py). A webhook problem never changes the job's outcome.

`face3d serve`'s worker consumes the webhooks queue; in production run a delivery worker of its own, e.g.
``face3d worker -Q webhooks --pool threads -c 8`` (compose's worker-webhooks), so deliveries never wait behind jobs.
Jobs finished outside a job task (the sweeper's worker_lost / timeout, cancels) are announced through
JobQueue.announce_finished.
"""
from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from face3d.shared.jobs import find_job
from face3d.shared.queue import WEBHOOK_TASK_NAME
from face3d.shared.webhooks import attempt_delivery, backoff_s
from face3d.worker.context import WorkerContext, context_for
from face3d.worker.outages import Patience, is_outage

log = logging.getLogger(__name__)
FINISHED_OUTCOMES = frozenset({"succeeded", "failed", "canceled", "reused"})
OUTAGE_RETRY_COUNTDOWN_S = 5


def notify_finished(ctx: WorkerContext, job_id: str, outcome: str) -> None:
    """Deliver the webhook of a job the task just finished (``outcome`` as run_job or batch_item return it)."""
    if outcome not in FINISHED_OUTCOMES:
        return
    try:    # a broker or database outage is waited out like the job's own steps (worker/outages.py)
        Patience(ctx.settings.outage_retry_s, job_id).retry(lambda: _queue_first_attempt(ctx, job_id))
    except Exception:   # noqa: BLE001 - the job is finished whatever happens to its webhook
        log.exception("job %s: webhook delivery could not be queued", job_id)


def _queue_first_attempt(ctx: WorkerContext, job_id: str) -> None:
    job = find_job(ctx.session_factory, job_id)
    if job is not None and job.webhook_url:
        ctx.queue.retry_webhook(job_id, attempt=1)


@shared_task(name=WEBHOOK_TASK_NAME, bind=True, acks_late=True, ignore_result=True)
def deliver_webhook(self: Any, job_id: str, attempt: int = 1) -> str:
    ctx = context_for(self.app)
    try:
        result = attempt_delivery(ctx.session_factory, ctx.settings, job_id, attempt)
    except Exception as exc:
        if not is_outage(exc):
            raise
        # The database is down: the same attempt again later, never given up for it (a POST already made goes
        # out again with the same webhook-id, which receivers drop).
        log.warning("job %s: webhook attempt %d postponed: %s", job_id, attempt, type(exc).__name__)
        raise self.retry(args=[job_id], kwargs={"attempt": attempt}, countdown=OUTAGE_RETRY_COUNTDOWN_S,
                         max_retries=None) from None
    if result is None:
        return "nothing to deliver"
    if result.delivered:
        return "delivered"
    if not result.retry or attempt >= ctx.settings.webhook_max_attempts:
        log.warning("job %s: webhook given up after attempt %d: %s", job_id, attempt, result.error)
        return "given up"
    raise self.retry(args=[job_id], kwargs={"attempt": attempt + 1}, countdown=backoff_s(ctx.settings, attempt),
                     max_retries=ctx.settings.webhook_max_attempts)
