"""Batch verbs: many photos under one id, each photo an ordinary job (``jobs.batch_id``).

A batch row (shared/models.py) holds what its items share (engine, options, owner) and how many items it has;
everything else (counts, progress, results) is read from its jobs, so there is one source of truth per photo. Items
are inserted in chunks with one executemany each, never one transaction per batch. Item state changes go through
the job verbs (shared/jobs.py).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Iterator

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from face3d.shared import jobs
from face3d.shared.db import SessionFactory, get_row, keyset_page, utcnow
from face3d.shared.errors import Conflict, NotFound
from face3d.shared.models import Batch, Job
from face3d.shared.schema import clip_name, storable_name
from face3d.shared.states import TERMINAL_STATES, BatchState, JobState

PAGE_SIZE = 500


@dataclass(frozen=True)
class NewItem:
    """One photo to add: where its bytes are (a storage key or an s3:// URL) and, when known, their SHA-256."""

    name: str
    input_key: str
    input_size: int = 0
    input_sha256: str = ""          # "" = not read yet; the worker hashes it before anything else
    job_id: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass(frozen=True)
class BatchProgress:
    total: int
    counts: dict[str, int]
    done: int
    state: BatchState
    throughput: float | None        # finished items per second since the batch was created
    eta_s: float | None
    last_finished_at: datetime | None


# ---------------------------------------------------------------- batches


def create_batch(sf: SessionFactory, *, engine: str, options: dict[str, Any], source: str, name: str | None = None,
                 owner_id: str | None = None, expanding: bool = False, source_key: str | None = None,
                 batch_id: str | None = None) -> Batch:
    """``expanding``: a worker turns the source into items (expand_batch); else the batch is complete as made and
    receives items one by one."""
    now = utcnow()
    batch = Batch(id=batch_id or uuid.uuid4().hex, owner_id=owner_id, name=(name or None) and storable_name(name),
                  engine=engine, options=dict(options), source=storable_name(source)[:1024], total=0,
                  source_key=source_key, expanded=0, expanded_at=None if expanding else now, created_at=now,
                  updated_at=now)
    with sf.begin() as session:
        session.add(batch)
    return batch


def get_batch(sf: SessionFactory, batch_id: str, owner_id: str | None = None) -> Batch:
    """The batch, or NotFound; with ``owner_id``, another owner's batch is NotFound too (no existence leak)."""
    batch = get_row(sf, Batch, batch_id, f"batch {batch_id}")
    if owner_id is not None and batch.owner_id != owner_id:
        raise NotFound(f"batch {batch_id} not found")
    return batch


def find_batch(sf: SessionFactory, batch_id: str) -> Batch | None:
    with sf() as session:
        return session.get(Batch, batch_id)


@dataclass(frozen=True)
class CancelOutcome:
    canceled: int                   # queued items canceled at once (running ones are only flagged)
    webhook_job_ids: list[str]      # of those, the ones with a webhook to send


def cancel_batch(sf: SessionFactory, batch_id: str) -> CancelOutcome:
    """Cancel every queued item at once and flag the running ones."""
    now = utcnow()
    in_batch = Job.batch_id == batch_id
    with sf.begin() as session:
        session.execute(sa.update(Batch).where(Batch.id == batch_id, Batch.canceled_at.is_(None))
                        .values(canceled_at=now, updated_at=now))
        canceled = jobs.cancel_where(session, in_batch, "batch canceled on request", now)
        jobs.flag_cancel_where(session, in_batch, now)
    return CancelOutcome(len(canceled), [job_id for job_id, url in canceled if url])


# ---------------------------------------------------------------- items


def add_items(sf: SessionFactory, batch: Batch, items: list[NewItem]) -> list[str]:
    """Insert one chunk of queued jobs with a single executemany, and count them on the batch. Returns job ids."""
    if not items:
        return []
    now = utcnow()
    rows = [_job_row(batch, item, now, position) for position, item in enumerate(items)]
    with sf.begin() as session:
        session.execute(sa.insert(Job), rows)
        session.execute(sa.update(Batch).where(Batch.id == batch.id)
                        .values(total=Batch.total + len(rows), updated_at=now))
    return [row["id"] for row in rows]


def add_expanded(sf: SessionFactory, batch: Batch, items: list[NewItem], start: int) -> bool:
    """Insert one page of an expansion and move the resume point from ``start`` past it, in one transaction: a
    page is in the database entirely or not at all. False (nothing inserted): the batch was canceled, finished or
    advanced by another expansion meanwhile."""
    now = utcnow()
    with sf.begin() as session:
        moved = session.execute(
            sa.update(Batch).where(Batch.id == batch.id, Batch.expanded == start, Batch.expanded_at.is_(None),
                                   Batch.canceled_at.is_(None))
            .values(expanded=start + len(items), total=Batch.total + len(items), updated_at=now)).rowcount
        if moved != 1:
            return False
        if items:
            session.execute(sa.insert(Job), [_job_row(batch, item, now, position)
                                             for position, item in enumerate(items)])
    return True


def finish_expansion(sf: SessionFactory, batch_id: str, error: str | None = None) -> None:
    now = utcnow()
    with sf.begin() as session:
        session.execute(sa.update(Batch).where(Batch.id == batch_id, Batch.expanded_at.is_(None))
                        .values(expanded_at=now, updated_at=now, expand_error=error and error[:2000]))


def expanding_since(sf: SessionFactory, before: datetime, limit: int = 100) -> list[Batch]:
    """Batches still expanding that made no progress since ``before`` (their task may be lost)."""
    query = (sa.select(Batch).where(Batch.expanded_at.is_(None), Batch.canceled_at.is_(None),
                                    Batch.updated_at < before).order_by(Batch.updated_at).limit(limit))
    with sf() as session:
        return list(session.scalars(query))


def claim_expansion_resend(sf: SessionFactory, batch: Batch, now: datetime) -> bool:
    with sf.begin() as session:
        return session.execute(sa.update(Batch).where(Batch.id == batch.id, Batch.updated_at == batch.updated_at,
                                                      Batch.expanded_at.is_(None))
                               .values(updated_at=now)).rowcount == 1


def touch(sf: SessionFactory, batch_id: str) -> None:
    """A sign of life of a paused expansion, so the sweeper does not take it for lost."""
    with sf.begin() as session:
        session.execute(sa.update(Batch).where(Batch.id == batch_id).values(updated_at=utcnow()))


def referenced(sf: SessionFactory, batch_ids: list[str]) -> set[str]:
    """Which of ``batch_ids`` still expand, i.e. still need their stored source."""
    query = sa.select(Batch.id).where(Batch.id.in_(batch_ids), Batch.expanded_at.is_(None))
    with sf() as session:
        return set(session.scalars(query))


def items_in_flight(sf: SessionFactory, owner_id: str | None) -> int:
    """Queued + running batch items of one owner (the per-key cap; None: the open API's)."""
    owner = Job.owner_id.is_(None) if owner_id is None else Job.owner_id == owner_id
    query = (sa.select(sa.func.count()).select_from(Job)
             .where(owner, Job.state.in_([JobState.QUEUED, JobState.RUNNING]), Job.batch_id.is_not(None)))
    with sf() as session:
        return int(session.scalar(query) or 0)


def unpacked_bytes(sf: SessionFactory, batch_id: str) -> int:
    """Bytes the batch's items already hold (a resumed zip expansion's share of its uncompressed bound)."""
    query = sa.select(sa.func.coalesce(sa.func.sum(Job.input_size), 0)).where(Job.batch_id == batch_id)
    with sf() as session:
        return int(session.scalar(query) or 0)


def add_item(sf: SessionFactory, batch: Batch, item: NewItem) -> tuple[Job, bool]:
    """Insert one item; an item of the same name already in the batch is returned instead (created=False), so a
    client that retries an upload after a crash never gets the photo twice."""
    if batch.canceled_at is not None:
        raise Conflict(f"batch {batch.id} is canceled")
    try:
        add_items(sf, batch, [item])
        created = True
    except IntegrityError:
        created = False
    with sf() as session:
        job = session.scalars(sa.select(Job).where(Job.batch_id == batch.id,
                                                   Job.input_name == clip_name(item.name))).one()
    return job, created


def _job_row(batch: Batch, item: NewItem, now: datetime, position: int = 0) -> dict[str, Any]:
    """``created_at`` is ``now`` plus the item's position in microseconds, so the results (ordered by created_at,
    id) list one page's items in submission order, not in the order of their random ids."""
    return {"id": item.job_id, "state": JobState.QUEUED, "engine": batch.engine, "options": dict(batch.options),
            "input_name": clip_name(item.name), "input_key": item.input_key, "input_size": item.input_size,
            "input_sha256": item.input_sha256, "progress": 0.0, "attempts": 0, "cancel_requested": False,
            "created_at": now + timedelta(microseconds=position), "updated_at": now, "owner_id": batch.owner_id, "batch_id": batch.id}


def reuse_result(sf: SessionFactory, job_id: str, source: Job, worker: str,
                 copy_artifacts: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> bool:
    """Finish a queued job with the result of an earlier job of the same owner on the same bytes and options (no
    engine run). ``copy_artifacts`` gives the job its own copy of the files, so deleting either job never breaks
    the other; ``reused_from`` names the job that computed them."""
    if not jobs.mark_running(sf, job_id, worker):
        return False
    earlier = source.result or {}
    try:
        artifacts = copy_artifacts(earlier.get("artifacts", []))
    except Exception:
        jobs.requeue(sf, job_id)            # the caller runs the engine instead
        raise
    result = {**earlier, "artifacts": artifacts, "reused_from": earlier.get("reused_from") or source.id}
    return jobs.mark_succeeded(sf, job_id, result)


# ---------------------------------------------------------------- reading


def list_batches(sf: SessionFactory, *, owner_id: str | None = None, cursor: str | None = None,
                 limit: int = 50) -> tuple[list[Batch], str | None]:
    """Newest first, keyset-paginated on (created_at, id) like jobs.list_jobs; ``owner_id``: that key's only."""
    query = sa.select(Batch)
    if owner_id is not None:
        query = query.where(Batch.owner_id == owner_id)
    return keyset_page(sf, Batch, query, cursor=cursor, limit=limit)


def batch_progress(sf: SessionFactory, batch: Batch) -> BatchProgress:
    return batches_progress(sf, [batch])[batch.id]


def batches_progress(sf: SessionFactory, page: list[Batch]) -> dict[str, BatchProgress]:
    """Progress of several batches from one grouped query."""
    if not page:
        return {}
    query = (sa.select(Job.batch_id, Job.state, sa.func.count(), sa.func.max(Job.finished_at))
             .where(Job.batch_id.in_([batch.id for batch in page])).group_by(Job.batch_id, Job.state))
    with sf() as session:
        rows = session.execute(query).all()
    return {batch.id: _progress(batch, [row[1:] for row in rows if row[0] == batch.id]) for batch in page}


def _progress(batch: Batch, rows: list[Any]) -> BatchProgress:
    counts = {state.value: 0 for state in JobState}
    last_finished = None
    for state, count, finished in rows:
        counts[JobState(state).value] = count
        if finished is not None:
            last_finished = finished if last_finished is None else max(last_finished, finished)
    done = sum(counts[state.value] for state in TERMINAL_STATES)
    total = sum(counts.values())
    state = _overall_state(batch, counts, done, total)
    end = last_finished if state in (BatchState.COMPLETED, BatchState.CANCELED) and last_finished else utcnow()
    elapsed = max((end - batch.created_at).total_seconds(), 1e-3)
    throughput = done / elapsed if done else None
    eta = (total - done) / throughput if throughput and state in (BatchState.QUEUED, BatchState.RUNNING) else None
    return BatchProgress(total=total, counts=counts, done=done, state=state, throughput=throughput, eta_s=eta,
                         last_finished_at=last_finished)


def _overall_state(batch: Batch, counts: dict[str, int], done: int, total: int) -> BatchState:
    if batch.canceled_at is not None:
        return BatchState.CANCELED
    if batch.expanded_at is None:
        return BatchState.EXPANDING
    if batch.expand_error and not total:
        return BatchState.FAILED
    if total and done == total:
        return BatchState.COMPLETED
    started = done + counts[JobState.RUNNING.value]
    return BatchState.RUNNING if started else BatchState.QUEUED


def iter_batch_jobs(sf: SessionFactory, batch_id: str, states: Iterable[JobState] | None = None,
                    page_size: int = PAGE_SIZE) -> Iterator[Job]:
    """Every job of the batch in insertion order, read in keyset pages (one short query per page)."""
    wanted = list(states) if states is not None else None
    after: tuple[datetime, str] | None = None
    while True:
        query = (sa.select(Job).where(Job.batch_id == batch_id)
                 .order_by(Job.created_at, Job.id).limit(page_size))
        if wanted is not None:
            query = query.where(Job.state.in_(wanted))
        if after is not None:
            query = query.where(sa.or_(Job.created_at > after[0],
                                       sa.and_(Job.created_at == after[0], Job.id > after[1])))
        with sf() as session:
            page = list(session.scalars(query))
        yield from page
        if len(page) < page_size:
            return
        after = (page[-1].created_at, page[-1].id)
