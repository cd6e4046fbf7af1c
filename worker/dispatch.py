"""Sending a job to its queue. Fails fast with broker_unavailable instead of hanging the API request."""
from __future__ import annotations

import logging

from celery import Celery
from kombu.exceptions import ChannelError, KombuError, OperationalError

from shared.config import Settings
from shared.errors import ErrorCode, Face3dError
from worker.celery_app import BATCH_QUEUE, BATCH_TASK_NAME, TASK_NAME

log = logging.getLogger(__name__)
RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.25, "interval_max": 0.5}


def queue_for(celery_app: Celery, engine: str) -> str:
    settings = getattr(celery_app.conf, "face3d_settings", None)
    if isinstance(settings, Settings):
        return settings.celery_queue_for(engine)
    return "gpu" if engine == "hrn" else "cpu"


def send_job(celery_app: Celery, job_id: str, engine: str) -> None:
    queue = queue_for(celery_app, engine)
    try:
        celery_app.send_task(TASK_NAME, args=[job_id], queue=queue, routing_key=queue,
                             retry=True, retry_policy=RETRY_POLICY)
    except (OperationalError, KombuError, OSError, TimeoutError) as exc:
        log.warning("broker unreachable while sending job %s: %s", job_id, exc)
        raise Face3dError(f"the job queue is unreachable: {exc}", ErrorCode.BROKER_UNAVAILABLE) from exc


def batch_queue_for(celery_app: Celery, engine: str) -> str:
    return item_queue(queue_for(celery_app, engine))


def item_queue(job_queue: str) -> str:
    """The queue of a batch item whose engine's jobs go to ``job_queue``: CPU batch items wait in their own
    low-priority queue; GPU engines' items share the gpu queue."""
    return BATCH_QUEUE if job_queue == "cpu" else job_queue


def queue_depth(celery_app: Celery, queue: str) -> int:
    """Messages waiting in ``queue`` (not those a worker holds). Raises broker_unavailable when unreachable."""
    try:
        with celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
            try:
                return int(connection.default_channel.queue_declare(queue=queue, passive=True).message_count)
            except ChannelError:        # never declared, or (Redis) emptied: an empty list key does not exist
                return 0
    except (OperationalError, KombuError, OSError, TimeoutError) as exc:
        raise Face3dError(f"the job queue is unreachable: {exc}", ErrorCode.BROKER_UNAVAILABLE) from exc


def send_batch_jobs(celery_app: Celery, job_ids: list[str], engine: str) -> None:
    """Send one chunk of batch items over a single broker connection.

    On failure raises broker_unavailable with ``details["sent"]``: how many went out before it.
    """
    queue, sent = batch_queue_for(celery_app, engine), 0
    try:
        with celery_app.producer_or_acquire() as producer:
            for job_id in job_ids:
                celery_app.send_task(BATCH_TASK_NAME, args=[job_id], queue=queue, routing_key=queue,
                                     producer=producer, retry=True, retry_policy=RETRY_POLICY)
                sent += 1
    except (OperationalError, KombuError, OSError, TimeoutError) as exc:
        log.warning("broker unreachable after sending %d of %d batch items: %s", sent, len(job_ids), exc)
        raise Face3dError(f"the job queue is unreachable: {exc}", ErrorCode.BROKER_UNAVAILABLE, sent=sent) from exc
