"""RecordingQueue: a stand-in for shared.queue.JobQueue that sends nothing and remembers everything (in the spirit
of dramatiq's stub broker). The API, the sweeper and the worker context take it wherever they take a JobQueue."""
from __future__ import annotations

from typing import Callable, Iterable

from face3d.shared.errors import ErrorCode, Face3dError


class RecordingQueue:
    def __init__(self, depths: dict[str, int] | None = None) -> None:
        self.sent: list[tuple[str, str]] = []          # single jobs: (job_id, engine)
        self.items: list[tuple[str, list[str]]] = []   # batch items, one entry per send: (engine, job ids)
        self.expansions: list[str] = []                # batches whose expansion was queued
        self.on_expand: Callable[[str], None] | None = None    # runs on each queued expansion: a fake worker
        self.announced: list[str] = []                 # jobs finished outside a task, whose webhook was queued
        self.webhooks: list[tuple[str, int, float]] = []   # (job_id, attempt, countdown)
        self.front: list[str] = []                     # ids sent into a front lane (taken back from a lost worker)
        self.depths = dict(depths or {})               # what depth() answers per queue (default 0)
        self.on_send: Callable[[str], None] | None = None  # runs on each sent job id: a fake worker
        self.fail_with: Exception | None = None        # raised by every send instead of recording it
        self.broker_down = False                       # check() and depth() raise
        self.engines_seen: set[str] | None = None      # engines a worker announced (None: every engine)

    def send_job(self, job_id: str, engine: str, front: bool = False) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((job_id, engine))
        self.front.extend([job_id] if front else [])
        if self.on_send is not None:
            self.on_send(job_id)

    def send_expand(self, batch_id: str, countdown: float | None = None) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.expansions.append(batch_id)
        if self.on_expand is not None:
            self.on_expand(batch_id)

    def send_items(self, job_ids: list[str], engine: str, front: bool = False) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.items.append((engine, list(job_ids)))
        self.front.extend(job_ids if front else [])
        for job_id in job_ids:
            if self.on_send is not None:
                self.on_send(job_id)

    def retry_webhook(self, job_id: str, attempt: int = 1, countdown: float = 0) -> None:
        self.webhooks.append((job_id, attempt, countdown))

    def announce_finished(self, job_ids: Iterable[str]) -> None:
        self.announced.extend(job_ids)

    def depth(self, queue: str) -> int:
        if self.broker_down:
            raise Face3dError("the job queue is unreachable (stub)", ErrorCode.BROKER_UNAVAILABLE)
        return self.depths.get(queue, 0)

    def announce_engines(self, engines: Iterable[str], fresh_s: float) -> None:
        self.engines_seen = {*(self.engines_seen or ()), *engines}

    def engine_announced(self, engine: str) -> bool:
        return self.engines_seen is None or engine in self.engines_seen

    def check(self) -> None:
        if self.broker_down:
            raise Face3dError("the job queue is unreachable (stub)", ErrorCode.BROKER_UNAVAILABLE)

    @property
    def job_ids(self) -> list[str]:
        """Ids of the single jobs sent."""
        return [job_id for job_id, _ in self.sent]

    @property
    def item_ids(self) -> list[str]:
        """Ids of the batch items sent."""
        return [job_id for _, ids in self.items for job_id in ids]

    @property
    def sent_ids(self) -> list[str]:
        """Every job id sent: single jobs, then batch items."""
        return self.job_ids + self.item_ids
