"""The job verbs: every read of the jobs table the services share, and every write to it.

Each state change is one conditional ``UPDATE ... WHERE <which jobs> AND state IN (<sources>)``, where the sources
are the states shared/states.py allows to move to the target (``_transition``): the database decides, so a
redelivered message, a second worker or a late cancel can never move a terminal job, and a verb's bool return says
whether *this* call made the change. Writes that keep the state (progress, heartbeat, the input of a batch item)
name the states they may happen in.
"""
from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from face3d.shared.db import SessionFactory, get_row, keyset_page, utcnow
from face3d.shared.errors import Conflict, ErrorCode, Face3dError, NotFound
from face3d.shared.models import ApiKey, Job
from face3d.shared.states import RETRYABLE_STATES, TERMINAL_STATES, JobState, parse_state, sources_of

MAX_ERROR_MESSAGE = 4000
CANCELED_MESSAGE = "canceled on request"


# ---------------------------------------------------------------- create / read / delete


def create_job(sf: SessionFactory, *, engine: str, options: dict[str, Any], input_name: str, input_key: str,
               input_size: int, input_sha256: str, idempotency_key: str | None = None,
               request_fingerprint: str | None = None, job_id: str | None = None, owner_id: str | None = None,
               webhook_url: str | None = None, retry_of: str | None = None,
               active_cap: int = 0) -> tuple[Job, bool]:
    """Insert a queued job; returns (job, created).

    A repeated idempotency key with the same fingerprint returns the first job and created=False; with a different
    fingerprint it raises Conflict. ``active_cap`` > 0: the owner's queued + running jobs are counted in the same
    transaction as the insert, under a lock on the owner's key row, so concurrent submits never pass the cap.
    """
    now = utcnow()
    job = Job(id=job_id or uuid.uuid4().hex, state=JobState.QUEUED, engine=engine, options=dict(options),
              input_name=input_name, input_key=input_key, input_size=input_size, input_sha256=input_sha256,
              idempotency_key=idempotency_key, request_fingerprint=request_fingerprint, progress=0.0, attempts=0,
              cancel_requested=False, created_at=now, updated_at=now, owner_id=owner_id, webhook_url=webhook_url,
              retry_of=retry_of)
    try:
        with sf.begin() as session:
            if owner_id is not None and active_cap > 0:
                _hold_active_cap(session, owner_id, active_cap)
            session.add(job)
        return job, True
    except IntegrityError:
        if idempotency_key is None:
            raise Conflict(f"job id {job.id} already exists") from None
    return _replayed(sf, job.id, idempotency_key, request_fingerprint), False


class TooManyActiveJobs(Face3dError):
    code = ErrorCode.TOO_MANY_ACTIVE_JOBS


def _hold_active_cap(session: Session, owner_id: str, cap: int) -> None:
    """A no-op UPDATE of the key's row takes its row lock (PostgreSQL) or the write lock (SQLite) before counting,
    so the count and the insert after it are one step for every submit of that key."""
    session.execute(sa.update(ApiKey).where(ApiKey.id == owner_id).values(name=ApiKey.name))
    active = session.scalar(_active_query(owner_id)) or 0
    if active >= cap:
        raise TooManyActiveJobs(f"this API key already has {active} queued or running jobs (limit {cap}); wait for "
                                "some to finish", active=active, cap=cap)


def _replayed(sf: SessionFactory, job_id: str, key: str, fingerprint: str | None) -> Job:
    with sf() as session:
        existing = session.scalars(sa.select(Job).where(Job.idempotency_key == key)).one_or_none()
    if existing is None:
        raise Conflict(f"job id {job_id} already exists")
    if existing.request_fingerprint != fingerprint:
        raise Conflict("Idempotency-Key was already used with a different request", job_id=existing.id)
    return existing


def get_job(sf: SessionFactory, job_id: str) -> Job:
    return get_row(sf, Job, job_id, f"job {job_id}")


def require_retryable(job: Job) -> Job:
    """The job, when it may be retried (states.RETRYABLE_STATES); else Conflict naming its state."""
    if job.state not in RETRYABLE_STATES:
        allowed = " or ".join(state.value for state in RETRYABLE_STATES)
        raise Conflict(f"job {job.id} is {job.state.value}; only a {allowed} job can be retried")
    return job


def find_job(sf: SessionFactory, job_id: str) -> Job | None:
    """The job, or None when there is none (deleted meanwhile: a worker then has nothing to do)."""
    with sf() as session:
        return session.get(Job, job_id)


def existing_ids(sf: SessionFactory, job_ids: list[str]) -> set[str]:
    """Which of ``job_ids`` have a row (the storage sweep keeps their files)."""
    with sf() as session:
        return set(session.scalars(sa.select(Job.id).where(Job.id.in_(job_ids))))


def delete_job(sf: SessionFactory, job_id: str) -> Job:
    """Delete a finished job's row and return it so the caller removes its files. Unfinished jobs: Conflict."""
    with sf.begin() as session:
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        deleted = session.execute(
            sa.delete(Job).where(Job.id == job_id, Job.state.in_(list(TERMINAL_STATES)))
            .execution_options(synchronize_session=False)
        ).rowcount
        if not deleted:
            raise Conflict(f"job {job_id} is {job.state.value}; cancel it before deleting")
        session.expunge(job)
    return job


def list_jobs(sf: SessionFactory, *, state: JobState | str | None = None, cursor: str | None = None,
              limit: int = 50, owner_id: str | None = None) -> tuple[list[Job], str | None]:
    """Newest first, keyset-paginated on (created_at, id). Returns (page, cursor of the next page or None).
    ``owner_id``: only that API key's jobs (None: everybody's)."""
    query = sa.select(Job)
    if state is not None:
        query = query.where(Job.state == _known_state(state))
    if owner_id is not None:
        query = query.where(Job.owner_id == owner_id)
    return keyset_page(sf, Job, query, cursor=cursor, limit=limit)


def _known_state(state: JobState | str) -> JobState:
    try:
        return parse_state(state)
    except ValueError as exc:
        raise Face3dError(f"unknown state {state!r}; choose one of {exc}", ErrorCode.INVALID_REQUEST) from None


def count_active_jobs(sf: SessionFactory, owner_id: str) -> int:
    """Queued + running single jobs of one owner (the per-key cap). Batch items are left out: a batch queues
    thousands by design, on its own low-priority queue, and must not lock its key out of interactive submits."""
    with sf() as session:
        return int(session.scalar(_active_query(owner_id)) or 0)


def _active_query(owner_id: str) -> sa.Select:
    return (sa.select(sa.func.count()).select_from(Job)
            .where(Job.owner_id == owner_id, Job.state.in_([JobState.QUEUED, JobState.RUNNING]),
                   Job.batch_id.is_(None)))


def find_succeeded_by_content(sf: SessionFactory, input_sha256: str, engine: str,
                              options: dict[str, Any], owner_id: str | None) -> Job | None:
    """A succeeded job of the same owner (API key; None: the open API) on the same input bytes with the same engine
    and (canonical) options, newest first. Never another owner's: its id and files are not the caller's."""
    wanted = canonical_options(options)
    same_owner = Job.owner_id.is_(None) if owner_id is None else Job.owner_id == owner_id
    query = (sa.select(Job).where(Job.input_sha256 == input_sha256, Job.engine == engine,
                                  Job.state == JobState.SUCCEEDED, same_owner)
             .order_by(Job.finished_at.desc()).limit(20))
    with sf() as session:
        return next((job for job in session.scalars(query) if canonical_options(job.options) == wanted), None)


def canonical_options(options: dict[str, Any] | None) -> str:
    """Options with the engine defaults filled in, as sorted JSON: {} and {"video": True} are the same request."""
    from face3d.shared.engines.base import Options

    defaults = {field.name: field.default for field in dataclasses.fields(Options)}
    return json.dumps({**defaults, **(options or {})}, sort_keys=True, separators=(",", ":"), default=str)


# ---------------------------------------------------------------- the two kinds of write


def _update(where: sa.ColumnElement[bool], states: Iterable[JobState], **values: Any) -> sa.Update:
    """UPDATE jobs SET ``values`` WHERE ``where`` AND state IN ``states``: the one statement every write uses."""
    return (sa.update(Job).where(where, Job.state.in_(list(states))).values(**values)
            .execution_options(synchronize_session=False))


def _sources(target: JobState, only_from: Iterable[JobState] | None = None) -> list[JobState]:
    """The states a job may move to ``target`` from (states.ALLOWED_TRANSITIONS), narrowed to ``only_from``."""
    allowed = sources_of(target)
    chosen = allowed if only_from is None else frozenset(only_from)
    if not chosen <= allowed:
        raise ValueError(f"no transition to {target.value} from {sorted(s.value for s in chosen - allowed)}")
    return [state for state in JobState if state in chosen]


def _transition(where: sa.ColumnElement[bool], target: JobState, *, only_from: Iterable[JobState] | None = None,
                now: datetime | None = None, **values: Any) -> sa.Update:
    return _update(where, _sources(target, only_from), state=target, updated_at=now or utcnow(), **values)


def _changed_one(sf: SessionFactory, statement: sa.Update) -> bool:
    with sf.begin() as session:
        return session.execute(statement).rowcount == 1


def _finished(code: ErrorCode, message: str, now: datetime | None = None) -> dict[str, Any]:
    return {"error_code": ErrorCode(code).value, "error_message": message[:MAX_ERROR_MESSAGE],
            "finished_at": now or utcnow()}


# ---------------------------------------------------------------- state changes


def mark_running(sf: SessionFactory, job_id: str, worker: str) -> bool:
    return _changed_one(sf, _transition(Job.id == job_id, JobState.RUNNING, attempts=Job.attempts + 1,
                                        started_at=utcnow(), worker=worker[:255], stage="started", progress=0.0))


def mark_succeeded(sf: SessionFactory, job_id: str, result: dict[str, Any]) -> bool:
    return _changed_one(sf, _transition(Job.id == job_id, JobState.SUCCEEDED, result=result, stage="done",
                                        progress=1.0, finished_at=utcnow()))


def mark_failed(sf: SessionFactory, job_id: str, code: ErrorCode, message: str) -> bool:
    return _changed_one(sf, _transition(Job.id == job_id, JobState.FAILED, **_finished(code, message)))


def mark_canceled(sf: SessionFactory, job_id: str) -> bool:
    return _changed_one(sf, _transition(Job.id == job_id, JobState.CANCELED,
                                        **_finished(ErrorCode.CANCELED, CANCELED_MESSAGE)))


def requeue(sf: SessionFactory, job_id: str) -> bool:
    """running -> queued, so the next delivery can run it again (after a lost worker)."""
    return _changed_one(sf, _transition(Job.id == job_id, JobState.QUEUED, stage=None, progress=0.0, worker=None,
                                        result=None))


def fail_all(sf: SessionFactory, job_ids: Iterable[str], code: ErrorCode, message: str) -> None:
    for job_id in job_ids:
        mark_failed(sf, job_id, code, message)


def cancel_job(sf: SessionFactory, job_id: str) -> Job:
    """Queued: canceled at once. Running: flagged; the worker stops at its next stage. Finished: Conflict."""
    with sf.begin() as session:
        flagged = cancel_where(session, Job.id == job_id, CANCELED_MESSAGE) or flag_cancel_where(session,
                                                                                                 Job.id == job_id)
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        if not flagged:
            raise Conflict(f"job {job_id} is already {job.state.value}")
        return job


def cancel_where(session: Session, where: sa.ColumnElement[bool], message: str,
                 now: datetime | None = None) -> list[tuple[str, str | None]]:
    """Cancel the queued jobs ``where`` selects at once; returns (id, webhook_url) of each one canceled."""
    statement = _transition(where, JobState.CANCELED, only_from=[JobState.QUEUED], now=now,
                            **_finished(ErrorCode.CANCELED, message, now))
    return [tuple(row) for row in session.execute(statement.returning(Job.id, Job.webhook_url))]


def flag_cancel_where(session: Session, where: sa.ColumnElement[bool], now: datetime | None = None) -> int:
    """Ask the running jobs ``where`` selects to stop at their next stage; returns how many were flagged."""
    return session.execute(_update(where, [JobState.RUNNING], cancel_requested=True,
                                   updated_at=now or utcnow())).rowcount


def report_progress(sf: SessionFactory, job_id: str, stage: str, progress: float) -> bool | None:
    """Record a running job's stage and progress, and read its cancel flag, in one round trip (the worker calls it
    at every stage). None: the job is no longer running; else whether a cancel was requested. Progress never goes
    back: a smaller value than the stored one keeps the stored one."""
    value = min(max(progress, 0.0), 1.0)
    never_back = sa.case((Job.progress > value, Job.progress), else_=sa.literal(value, sa.Float()))
    statement = _update(Job.id == job_id, [JobState.RUNNING], updated_at=utcnow(), stage=stage[:64],
                        progress=never_back).returning(Job.cancel_requested)
    with sf.begin() as session:
        flag = session.execute(statement).scalar_one_or_none()
    return None if flag is None else bool(flag)


def record_partial_result(sf: SessionFactory, job_id: str, result: dict[str, Any] | None) -> bool:
    """Store what a running job has stored so far (its artifacts with their ``ready`` flags): readers see the mesh
    before the video. False once the job is no longer running (nothing written then)."""
    return _changed_one(sf, _update(Job.id == job_id, [JobState.RUNNING], result=result, updated_at=utcnow()))


def record_input(sf: SessionFactory, job_id: str, *, input_key: str, input_size: int, input_sha256: str) -> bool:
    """Fill in what the worker learnt by reading a queued batch item's bytes (hash, size, its copy in storage)."""
    return _changed_one(sf, _update(Job.id == job_id, [JobState.QUEUED], input_key=input_key, input_size=input_size,
                                    input_sha256=input_sha256, updated_at=utcnow()))


# ---------------------------------------------------------------- liveness (heartbeat + sweeper)


def touch_heartbeat(sf: SessionFactory, job_id: str, worker: str) -> bool:
    """Stamp heartbeat_at; False once the job is no longer running under ``worker`` (finished, requeued, taken)."""
    return _changed_one(sf, _update(sa.and_(Job.id == job_id, Job.worker == worker[:255]), [JobState.RUNNING],
                                    heartbeat_at=utcnow()))


def last_sign_of_life(job: Job) -> datetime:
    """The newest moment a running job's worker was known alive (a heartbeat, a progress write or its start)."""
    return max(t for t in (job.heartbeat_at, job.updated_at) if t is not None)


def stale_running_jobs(sf: SessionFactory, silent_since: datetime, limit: int = 100) -> list[Job]:
    """Running jobs whose worker has shown no sign of life since ``silent_since``."""
    # updated_at covers progress writes and the start (mark_running), heartbeat_at the heartbeat thread.
    quiet_heartbeat = sa.or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < silent_since)
    return _oldest_first(sf, sa.select(Job).where(Job.state == JobState.RUNNING, Job.updated_at < silent_since,
                                                   quiet_heartbeat), limit)


def running_started_before(sf: SessionFactory, started_before: datetime, limit: int = 100) -> list[Job]:
    return _oldest_first(sf, sa.select(Job).where(Job.state == JobState.RUNNING, Job.started_at < started_before),
                         limit)


def queued_older_than(sf: SessionFactory, queued_before: datetime, limit: int = 100,
                      batch_items: bool | None = None) -> list[Job]:
    """Queued jobs that entered the queue (or were last resent) before ``queued_before``, oldest first.
    ``batch_items``: True only batch items, False only single jobs, None both."""
    query = sa.select(Job).where(Job.state == JobState.QUEUED, Job.updated_at < queued_before)
    if batch_items is not None:
        query = query.where(Job.batch_id.is_not(None) if batch_items else Job.batch_id.is_(None))
    return _oldest_first(sf, query, limit)


def _oldest_first(sf: SessionFactory, query: sa.Select, limit: int) -> list[Job]:
    with sf() as session:
        return list(session.scalars(query.order_by(Job.created_at).limit(limit)))


def queued_counts(sf: SessionFactory) -> dict[tuple[str, bool], int]:
    """How many jobs are queued, per (engine, is a batch item)."""
    is_item = Job.batch_id.is_not(None)
    query = (sa.select(Job.engine, is_item, sa.func.count()).where(Job.state == JobState.QUEUED)
             .group_by(Job.engine, is_item))
    with sf() as session:
        return {(engine, bool(item)): int(count) for engine, item, count in session.execute(query)}


def claim_resend(sf: SessionFactory, job: Job, now: datetime | None = None) -> bool:
    """Bump a queued job's updated_at before its message is sent again, if no one changed the row meanwhile;
    so two sweepers never both resend it and the next resend waits a full period."""
    return _changed_one(sf, _update(_unchanged_since_read(job), [JobState.QUEUED], updated_at=now or utcnow()))


def requeue_lost(sf: SessionFactory, job: Job, now: datetime | None = None) -> bool:
    """running -> queued for a job whose worker went silent, unless it showed a sign of life meanwhile."""
    return _changed_one(sf, _transition(_unchanged_since_read(job), JobState.QUEUED, now=now, stage=None,
                                        progress=0.0, worker=None, heartbeat_at=None, result=None))


def fail_lost(sf: SessionFactory, job: Job, code: ErrorCode, message: str, now: datetime | None = None) -> bool:
    return _changed_one(sf, _transition(_unchanged_since_read(job), JobState.FAILED, only_from=[JobState.RUNNING],
                                        now=now, **_finished(code, message, now)))


def _unchanged_since_read(job: Job) -> sa.ColumnElement[bool]:
    """Optimistic check on updated_at and heartbeat_at: any write since ``job`` was read makes the update a no-op.
    The caller's ``now`` becomes updated_at, so a sweep with a given clock stays consistent."""
    heartbeat = Job.heartbeat_at.is_(None) if job.heartbeat_at is None else Job.heartbeat_at == job.heartbeat_at
    return sa.and_(Job.id == job.id, Job.updated_at == job.updated_at, heartbeat)
