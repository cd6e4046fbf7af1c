"""The Celery application, built from Settings. Creating it opens no connection; sending or consuming does."""
from __future__ import annotations

from celery import Celery
from kombu import Exchange, Queue

from shared.config import Settings
from worker.embedded import find_embedded_broker

TASK_NAME = "face3d.reconstruct_job"
BATCH_TASK_NAME = "face3d.batch_item"
WEBHOOK_TASK_NAME = "face3d.deliver_webhook"
BATCH_QUEUE = "batch"
WEBHOOK_QUEUE = "webhooks"      # deliveries and their retries never wait behind queued jobs
QUEUES = ("cpu", "gpu", BATCH_QUEUE, WEBHOOK_QUEUE)
SOFT_LIMIT_MARGIN_S = 15


def broker_url_for(settings: Settings) -> str:
    """The concrete broker URL: BROKER_URL, or the embedded broker running for data_dir."""
    if not settings.uses_embedded_broker:
        return settings.broker_url
    url = find_embedded_broker(settings.data_dir)
    if url is None:
        from shared.errors import ErrorCode, Face3dError

        raise Face3dError(
            f"no embedded broker is running for {settings.data_dir}; start `face3d serve` or `face3d worker` first, "
            "or set BROKER_URL", ErrorCode.BROKER_UNAVAILABLE)
    return url


def declared_queues() -> list[Queue]:
    """Each queue with its own direct exchange of the same name (else Celery binds them all to the default
    queue's exchange, and the worker banner reads ``gpu exchange=cpu(direct)``)."""
    return [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES]


def make_celery(settings: Settings, broker_url: str | None = None) -> Celery:
    app = Celery("face3d", broker=broker_url or broker_url_for(settings),
                 include=["worker.tasks", "worker.batch_tasks", "worker.webhooks"])
    soft_limit = max(1, settings.job_time_limit_s - min(SOFT_LIMIT_MARGIN_S, settings.job_time_limit_s // 4))
    app.conf.update(
        task_acks_late=True,                    # a job is acknowledged only after it ran ...
        task_reject_on_worker_lost=True,        # ... so a killed worker's job is delivered again
        worker_prefetch_multiplier=1,           # one heavy job per process at a time
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,                # job state lives in the database, not in a result backend
        task_queues=declared_queues(),
        task_default_queue="cpu",
        task_routes={TASK_NAME: {"queue": "cpu"}, BATCH_TASK_NAME: {"queue": BATCH_QUEUE},
                     WEBHOOK_TASK_NAME: {"queue": WEBHOOK_QUEUE}},
        task_time_limit=settings.job_time_limit_s,
        task_soft_time_limit=soft_limit,
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s,
            "socket_connect_timeout": settings.broker_connect_timeout_s,
            # Redis: take from the queues in the order a worker lists them (-Q cpu,batch), not round robin, so
            # interactive jobs never wait behind a big batch (the batch queue only runs when cpu is empty).
            "queue_order_strategy": "priority",
        },
        broker_connection_timeout=settings.broker_connect_timeout_s,
        broker_connection_retry_on_startup=True,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    app.conf.face3d_settings = settings
    return app
