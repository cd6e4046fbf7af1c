"""The broker's one face: the Celery app, the queue and task names, routing, and JobQueue, the one object the API,
the sweeper and the workers send through. Creating either opens no connection; sending, counting or checking does.

Task names are part of the messages already in queues: they never change with the code's layout.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Iterable

from celery import Celery
from celery.utils import uuid
from kombu import Exchange, Queue
from kombu.exceptions import ChannelError, KombuError, OperationalError

from face3d.shared.broker import find_embedded_broker
from face3d.shared.config import Settings
from face3d.shared.errors import ErrorCode, Face3dError

log = logging.getLogger(__name__)

TASK_NAME = "face3d.reconstruct_job"
BATCH_TASK_NAME = "face3d.batch_item"
WEBHOOK_TASK_NAME = "face3d.deliver_webhook"
EXPAND_TASK_NAME = "face3d.expand_batch"      # a batch's source (manifest, zip, S3 prefix) -> items, on the batch queue
CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"
BATCH_QUEUE = "batch"           # batch items, read after the interactive queues
WEBHOOK_QUEUE = "webhooks"      # deliveries and their retries never wait behind queued jobs
QUEUES = (CPU_QUEUE, GPU_QUEUE, BATCH_QUEUE, WEBHOOK_QUEUE)
# A worker able to run an engine of GPU_ENGINES refreshes this key (expiring after GPU_WORKER_FRESH_S) while it
# runs; the API refuses that engine while it is absent, instead of queueing jobs nobody will take.
ENGINE_SEEN_KEY = "face3d:engine-seen:{engine}"
# The order `face3d serve`'s worker reads them in (priority order): interactive jobs, webhook retries, batch items.
SERVE_QUEUES = (CPU_QUEUE, GPU_QUEUE, WEBHOOK_QUEUE, BATCH_QUEUE)
# A job the sweeper takes back from a lost worker goes to its queue's front lane, read just before the queue itself
# (`face3d worker -Q cpu` consumes `cpu.front,cpu`), so it is next rather than behind the whole backlog.
FRONT_SUFFIX = ".front"
SOFT_LIMIT_MARGIN_S = 15
PUBLISH_BATCH = 500             # batch-item messages per broker round trip
# kombu's own retry of a send while the connection is re-established; longer outages fail the send.
SEND_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.25, "interval_max": 0.5}
BROKER_ERRORS = (OperationalError, KombuError, OSError, TimeoutError)


def queue_for(settings: Settings, engine: str) -> str:
    """The queue of a job for ``engine``: GPU_ENGINES go to gpu, the rest to cpu."""
    return GPU_QUEUE if engine in settings.gpu_engines else CPU_QUEUE


def item_queue_for(settings: Settings, engine: str) -> str:
    """The queue of a batch item: CPU items wait in their own low-priority queue; GPU engines' items share gpu."""
    job_queue = queue_for(settings, engine)
    return BATCH_QUEUE if job_queue == CPU_QUEUE else job_queue


def broker_url_for(settings: Settings) -> str:
    """The concrete broker URL: BROKER_URL, or the embedded broker running for data_dir."""
    if not settings.uses_embedded_broker:
        return settings.broker_url
    url = find_embedded_broker(settings.data_dir)
    if url is None:
        raise Face3dError(
            f"no embedded broker is running for {settings.data_dir}; start `face3d serve` or `face3d worker` first, "
            "or set BROKER_URL", ErrorCode.BROKER_UNAVAILABLE)
    return url


def front_lane(queue: str) -> str:
    return queue + FRONT_SUFFIX


def consumed_queues(names: Iterable[str]) -> list[str]:
    """What a worker asked for ``names`` (in priority order) reads: each queue's front lane just before it."""
    return [lane for name in names for lane in (front_lane(name), name)]


def declared_queues() -> list[Queue]:
    """Each queue (and front lane) with its own direct exchange of the same name (else Celery binds them all to the
    default queue's exchange, and the worker banner reads ``gpu exchange=cpu(direct)``)."""
    return [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in consumed_queues(QUEUES)]


def make_celery(settings: Settings, broker_url: str | None = None, include: Iterable[str] = ()) -> Celery:
    """The Celery app for ``settings``; ``include``: task modules a consuming worker imports (senders need none)."""
    app = Celery("face3d", broker=broker_url or broker_url_for(settings), include=list(include))
    app.conf.update(_celery_config(settings))
    app.conf.face3d_settings = settings      # read back by the tasks (worker/context.py)
    return app


def _celery_config(settings: Settings) -> dict[str, object]:
    soft_limit = max(1, settings.job_time_limit_s - min(SOFT_LIMIT_MARGIN_S, settings.job_time_limit_s // 4))
    return {
        "task_acks_late": True,                    # a job is acknowledged only after it ran ...
        "task_reject_on_worker_lost": True,        # ... so a killed worker's job is delivered again
        "worker_prefetch_multiplier": 1,           # one heavy job per process at a time
        "task_serializer": "json", "accept_content": ["json"], "result_serializer": "json",
        "task_ignore_result": True,                # job state lives in the database, not in a result backend
        "task_queues": declared_queues(),
        "task_default_queue": CPU_QUEUE,
        "task_routes": {TASK_NAME: {"queue": CPU_QUEUE}, BATCH_TASK_NAME: {"queue": BATCH_QUEUE},
                        EXPAND_TASK_NAME: {"queue": BATCH_QUEUE},
                        WEBHOOK_TASK_NAME: {"queue": WEBHOOK_QUEUE}},
        "task_time_limit": settings.job_time_limit_s,
        "task_soft_time_limit": soft_limit,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout_s,
            "socket_connect_timeout": settings.broker_connect_timeout_s,
            # Redis: take from the queues in the order a worker lists them (-Q cpu,batch), not round robin, so
            # interactive jobs never wait behind a big batch (the batch queue only runs when cpu is empty).
            "queue_order_strategy": "priority",
        },
        "broker_connection_timeout": settings.broker_connect_timeout_s,
        "broker_connection_retry_on_startup": True,
        "worker_send_task_events": False,
        "worker_hijack_root_logger": False,
        "enable_utc": True,
    }


class JobQueue:
    """Everything the service sends to the broker. Sends fail fast with broker_unavailable instead of hanging."""

    def __init__(self, celery_app: Celery, settings: Settings) -> None:
        self.celery_app, self.settings = celery_app, settings

    @classmethod
    def from_settings(cls, settings: Settings, broker_url: str | None = None) -> "JobQueue":
        return cls(make_celery(settings, broker_url), settings)

    def send_job(self, job_id: str, engine: str, front: bool = False) -> None:
        """Queue a job; ``front``: in its queue's front lane (a job taken back from a lost worker)."""
        queue = queue_for(self.settings, engine)
        queue = front_lane(queue) if front else queue
        try:
            self._send(TASK_NAME, job_id, queue)
        except BROKER_ERRORS as exc:
            log.warning("broker unreachable while sending job %s: %s", job_id, exc)
            raise Face3dError(f"the job queue is unreachable: {exc}", ErrorCode.BROKER_UNAVAILABLE) from exc

    def send_items(self, job_ids: list[str], engine: str, front: bool = False) -> None:
        """Send batch items over a single broker connection, PUBLISH_BATCH messages per round trip (kombu's
        producer batch: one Redis pipeline); ``front``: into the front lane. On failure raises broker_unavailable
        with ``details["sent"]``: how many went out for sure before it (whole flushed batches)."""
        queue, sent = item_queue_for(self.settings, engine), 0
        queue = front_lane(queue) if front else queue
        try:
            with self.celery_app.producer_or_acquire() as producer:
                for start in range(0, len(job_ids), PUBLISH_BATCH):
                    chunk = job_ids[start:start + PUBLISH_BATCH]
                    with producer.batch(max_size=PUBLISH_BATCH):
                        self._publish_items(producer, chunk, queue, declare=start == 0)
                    sent += len(chunk)
        except BROKER_ERRORS as exc:
            log.warning("broker unreachable after sending %d of %d batch items: %s", sent, len(job_ids), exc)
            raise Face3dError(f"the job queue is unreachable: {exc}", ErrorCode.BROKER_UNAVAILABLE,
                              sent=sent) from exc

    def _publish_items(self, producer: object, job_ids: list[str], queue: str, declare: bool) -> None:
        """Batch-item messages as ``send_task`` makes them (the same headers, body and properties), built through
        Celery's own message calls without send_task's per-call option merging and routing: ~150 instead of
        ~420 us an item, most of a 400,000-item manifest's expansion. The queue is declared once, not per message."""
        amqp, parent = self.celery_app.amqp, self.celery_app.current_worker_task
        parent_id = parent.request.id if parent else None
        root = (parent.request.root_id or parent_id) if parent else None
        for index, job_id in enumerate(job_ids):
            task_id = uuid()
            message = amqp.create_task_message(
                task_id, BATCH_TASK_NAME, [job_id], {}, reply_to=self.celery_app.thread_oid, root_id=root or task_id,
                parent_id=parent_id, ignore_result=None, argsrepr=repr([job_id]), kwargsrepr="{}")
            amqp.send_task_message(producer, BATCH_TASK_NAME, message, queue=queue, routing_key=queue, retry=True,
                                   retry_policy=SEND_RETRY_POLICY, declare=None if declare and index == 0 else [])

    def send_expand(self, batch_id: str, countdown: float | None = None) -> None:
        """Queue the expansion of a batch's source; raises broker_unavailable (the sweeper resends it later)."""
        try:
            self.celery_app.send_task(EXPAND_TASK_NAME, args=[batch_id], queue=BATCH_QUEUE, routing_key=BATCH_QUEUE,
                                      countdown=countdown, retry=True, retry_policy=SEND_RETRY_POLICY)
        except BROKER_ERRORS as exc:
            raise Face3dError(f"the job queue is unreachable: {exc}", ErrorCode.BROKER_UNAVAILABLE) from exc

    def _send(self, task: str, job_id: str, queue: str, **options: object) -> None:
        self.celery_app.send_task(task, args=[job_id], queue=queue, routing_key=queue, retry=True,
                                  retry_policy=SEND_RETRY_POLICY, **options)

    def retry_webhook(self, job_id: str, attempt: int = 1, countdown: float = 0) -> None:
        """Queue delivery attempt ``attempt`` of a finished job's webhook on the webhooks queue."""
        self.celery_app.send_task(WEBHOOK_TASK_NAME, args=[job_id], kwargs={"attempt": attempt},
                                  queue=WEBHOOK_QUEUE, routing_key=WEBHOOK_QUEUE, countdown=countdown or None)

    def announce_finished(self, job_ids: Iterable[str]) -> None:
        """Queue the webhooks of jobs finished outside a job task (cancels, the sweeper); a broker problem is
        logged, never raised: the jobs are finished whatever happens to their webhooks."""
        for job_id in job_ids:
            try:
                self.retry_webhook(job_id)
            except Exception as exc:  # noqa: BLE001
                log.warning("job %s: webhook could not be queued: %s", job_id, exc)

    def depth(self, queue: str) -> int:
        """Messages waiting in ``queue`` and its front lane (not those a worker holds). Raises broker_unavailable
        when unreachable."""
        try:
            with self.celery_app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1)
                return sum(_waiting(connection, lane) for lane in (queue, front_lane(queue)))
        except BROKER_ERRORS as exc:
            raise Face3dError(f"the job queue is unreachable: {exc}", ErrorCode.BROKER_UNAVAILABLE) from exc

    def announce_engines(self, engines: Iterable[str], fresh_s: float) -> None:
        """Say that a worker serving ``engines`` is alive, for the next ``fresh_s`` seconds."""
        with self.celery_app.pool.acquire(block=True) as connection:
            client = connection.default_channel.client
            for engine in engines:
                client.set(ENGINE_SEEN_KEY.format(engine=engine), f"{time.time():.3f}", ex=max(1, math.ceil(fresh_s)))

    def engine_announced(self, engine: str) -> bool:
        """Whether a worker serving ``engine`` announced itself within GPU_WORKER_FRESH_S."""
        try:
            with self.celery_app.pool.acquire(block=True) as connection:
                connection.ensure_connection(max_retries=1)
                return bool(connection.default_channel.client.exists(ENGINE_SEEN_KEY.format(engine=engine)))
        except BROKER_ERRORS as exc:
            raise Face3dError(f"the job queue is unreachable: {exc}", ErrorCode.BROKER_UNAVAILABLE) from exc

    def check(self) -> None:
        """Raises when the broker cannot be reached within BROKER_CONNECT_TIMEOUT_S (readiness)."""
        with self.celery_app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0.2,
                                         timeout=self.settings.broker_connect_timeout_s)


def _waiting(connection: object, queue: str) -> int:
    try:
        return int(connection.default_channel.queue_declare(queue=queue, passive=True).message_count)
    except ChannelError:        # never declared, or (Redis) emptied: an empty list key does not exist
        return 0
