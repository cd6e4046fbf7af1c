"""Webhook delivery from the workers: the first attempt right after the job finishes (in the job's task, so the
receiver hears at once, not after the queue drains), later attempts as a Celery task retried with a growing countdown
until WEBHOOK_MAX_ATTEMPTS. A webhook problem never changes the job's outcome.

The delivery task has its own ``webhooks`` queue, so a retry never waits behind queued jobs: `face3d serve`'s worker
consumes it; in production run `face3d worker -Q webhooks` (or add it to a worker's list, e.g. ``-Q cpu,webhooks``).
Jobs finished outside a job task (the sweeper's worker_lost / timeout, cancels) are announced with `enqueue_webhook`.
"""
from __future__ import annotations

import logging
from typing import Any

from celery import Celery, shared_task

from shared.webhooks import attempt_delivery, backoff_s
from worker.celery_app import WEBHOOK_QUEUE, WEBHOOK_TASK_NAME

log = logging.getLogger(__name__)
FINISHED_OUTCOMES = frozenset({"succeeded", "failed", "canceled"})


def notify_finished(app: Celery, ctx: Any, job_id: str, outcome: str) -> None:
    """Called once by the job task with run_job's outcome: deliver the webhook if the job just finished."""
    if outcome not in FINISHED_OUTCOMES:
        return
    try:
        result = attempt_delivery(ctx.session_factory, ctx.settings, job_id, attempt=1)
        if result is not None and result.retry and ctx.settings.webhook_max_attempts > 1:
            enqueue_webhook(app, job_id, attempt=2, countdown=backoff_s(ctx.settings, 1))
    except Exception:   # noqa: BLE001 - the job is finished whatever happens to its webhook
        log.exception("job %s: webhook delivery could not be started", job_id)


def enqueue_webhook(app: Celery, job_id: str, attempt: int = 1, countdown: float = 0) -> None:
    """Send the delivery task to the ``webhooks`` queue."""
    app.send_task(WEBHOOK_TASK_NAME, args=[job_id], kwargs={"attempt": attempt}, queue=WEBHOOK_QUEUE,
                  routing_key=WEBHOOK_QUEUE, countdown=countdown or None)


def announce_finished(app: Celery, job_ids: list[str]) -> None:
    """Queue the webhook of jobs finished outside a job task; a broker problem is logged, never raised (the jobs
    are finished whatever happens to their webhooks)."""
    for job_id in job_ids:
        try:
            enqueue_webhook(app, job_id)
        except Exception as exc:  # noqa: BLE001
            log.warning("job %s: webhook could not be queued: %s", job_id, exc)


@shared_task(name=WEBHOOK_TASK_NAME, bind=True, acks_late=True, ignore_result=True)
def deliver_webhook(self: Any, job_id: str, attempt: int = 1) -> str:
    from worker.tasks import _app_settings, context_for

    ctx = context_for(_app_settings(self.app))
    result = attempt_delivery(ctx.session_factory, ctx.settings, job_id, attempt)
    if result is None:
        return "nothing to deliver"
    if result.delivered:
        return "delivered"
    if not result.retry or attempt >= ctx.settings.webhook_max_attempts:
        log.warning("job %s: webhook given up after attempt %d: %s", job_id, attempt, result.error)
        return "given up"
    raise self.retry(args=[job_id], kwargs={"attempt": attempt + 1}, countdown=backoff_s(ctx.settings, attempt),
                     max_retries=ctx.settings.webhook_max_attempts)

