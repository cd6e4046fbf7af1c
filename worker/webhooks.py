"""Webhook delivery from the workers: the first attempt right after the job finishes (in the job's task, so the
receiver hears at once, not after the queue drains), later attempts as a Celery task retried with a growing countdown
until WEBHOOK_MAX_ATTEMPTS. A webhook problem never changes the job's outcome."""
from __future__ import annotations

import logging
from typing import Any

from celery import Celery, shared_task

from shared.webhooks import attempt_delivery, backoff_s
from worker.dispatch import queue_for

log = logging.getLogger(__name__)
WEBHOOK_TASK = "face3d.deliver_webhook"
FINISHED_OUTCOMES = frozenset({"succeeded", "failed", "canceled"})


def notify_finished(app: Celery, ctx: Any, job_id: str, outcome: str) -> None:
    """Called once by the job task with run_job's outcome: deliver the webhook if the job just finished."""
    if outcome not in FINISHED_OUTCOMES:
        return
    try:
        result = attempt_delivery(ctx.session_factory, ctx.settings, job_id, attempt=1)
        if result is not None and result.retry and ctx.settings.webhook_max_attempts > 1:
            job_engine = _engine_of(ctx, job_id)
            enqueue_webhook(app, job_id, job_engine, attempt=2, countdown=backoff_s(ctx.settings, 1))
    except Exception:   # noqa: BLE001 - the job is finished whatever happens to its webhook
        log.exception("job %s: webhook delivery could not be started", job_id)


def enqueue_webhook(app: Celery, job_id: str, engine: str, attempt: int = 1, countdown: float = 0) -> None:
    """Send the delivery task to the queue of the job's engine (a worker there is known to exist)."""
    queue = queue_for(app, engine)
    app.send_task(WEBHOOK_TASK, args=[job_id], kwargs={"attempt": attempt}, queue=queue, routing_key=queue,
                  countdown=countdown or None)


@shared_task(name=WEBHOOK_TASK, bind=True, acks_late=True, ignore_result=True)
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


def _engine_of(ctx: Any, job_id: str) -> str:
    from shared.models import get_job

    return get_job(ctx.session_factory, job_id).engine
