"""The job row and the verbs that move it between states.

Each verb is one transaction around a conditional ``UPDATE ... WHERE id = :id AND state IN (:sources)``: the
database decides, so a redelivered message, a second worker or a late cancel can never move a terminal job, and a
verb's bool return says whether *this* call made the change.
"""
from __future__ import annotations

import base64
import dataclasses
import json
import uuid
from datetime import UTC, datetime
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from shared.db import Base
from shared.errors import Conflict, ErrorCode, Face3dError, NotFound
from shared.states import TERMINAL_STATES, JobState

SessionFactory = sessionmaker[Session]
MAX_PAGE = 200
MAX_ERROR_MESSAGE = 4000


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC in Python on every backend (SQLite stores naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
StateType = sa.Enum(JobState, native_enum=False, length=16, create_constraint=False,
                    values_callable=lambda enum: [member.value for member in enum])


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        sa.UniqueConstraint("idempotency_key", name="uq_jobs_idempotency_key"),
        sa.Index("ix_jobs_created_at_id", "created_at", "id"),
        sa.Index("ix_jobs_state_created_at", "state", "created_at"),
        sa.Index("ix_jobs_owner_id_created_at", "owner_id", "created_at"),
        sa.Index("ix_jobs_owner_id_state", "owner_id", "state"),
        sa.Index("ix_jobs_batch_id_state", "batch_id", "state"),
        sa.Index("ix_jobs_batch_id_created_at_id", "batch_id", "created_at", "id"),
        sa.Index("ix_jobs_input_sha256", "input_sha256"),
        sa.UniqueConstraint("batch_id", "input_name", name="uq_jobs_batch_id_input_name"),
    )

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    state: Mapped[JobState] = mapped_column(StateType)
    engine: Mapped[str] = mapped_column(sa.String(32))
    options: Mapped[dict[str, Any]] = mapped_column(JSONType)
    input_name: Mapped[str] = mapped_column(sa.String(255))
    input_key: Mapped[str] = mapped_column(sa.String(1024))
    input_size: Mapped[int] = mapped_column(sa.BigInteger())
    input_sha256: Mapped[str] = mapped_column(sa.String(64))
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(255))
    request_fingerprint: Mapped[str | None] = mapped_column(sa.String(128))
    stage: Mapped[str | None] = mapped_column(sa.String(64))
    progress: Mapped[float] = mapped_column(sa.Float(), default=0.0, server_default="0")
    attempts: Mapped[int] = mapped_column(sa.Integer(), default=0, server_default="0")
    error_code: Mapped[str | None] = mapped_column(sa.String(64))
    error_message: Mapped[str | None] = mapped_column(sa.Text())
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    cancel_requested: Mapped[bool] = mapped_column(sa.Boolean(), default=False, server_default=sa.false())
    worker: Mapped[str | None] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    owner_id: Mapped[str | None] = mapped_column(sa.String(32))      # the API key that submitted it (shared.auth)
    webhook_url: Mapped[str | None] = mapped_column(sa.Text())
    batch_id: Mapped[str | None] = mapped_column(sa.String(32))      # shared.batches.Batch it belongs to, if any

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, state={self.state.value!r}, engine={self.engine!r})"


def utcnow() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------- create / read / delete


def create_job(sf: SessionFactory, *, engine: str, options: dict[str, Any], input_name: str, input_key: str,
               input_size: int, input_sha256: str, idempotency_key: str | None = None,
               request_fingerprint: str | None = None, job_id: str | None = None, owner_id: str | None = None,
               webhook_url: str | None = None) -> tuple[Job, bool]:
    """Insert a queued job; returns (job, created).

    A repeated idempotency key with the same fingerprint returns the first job and created=False; with a different
    fingerprint it raises Conflict.
    """
    now = utcnow()
    job = Job(id=job_id or uuid.uuid4().hex, state=JobState.QUEUED, engine=engine, options=dict(options),
              input_name=input_name, input_key=input_key, input_size=input_size, input_sha256=input_sha256,
              idempotency_key=idempotency_key, request_fingerprint=request_fingerprint, progress=0.0, attempts=0,
              cancel_requested=False, created_at=now, updated_at=now, owner_id=owner_id, webhook_url=webhook_url)
    try:
        with sf.begin() as session:
            session.add(job)
        return job, True
    except IntegrityError:
        if idempotency_key is None:
            raise Conflict(f"job id {job.id} already exists") from None
    existing = _find_by_idempotency_key(sf, idempotency_key)
    if existing is None:
        raise Conflict(f"job id {job.id} already exists")
    if existing.request_fingerprint != request_fingerprint:
        raise Conflict("Idempotency-Key was already used with a different request", job_id=existing.id)
    return existing, False


def _find_by_idempotency_key(sf: SessionFactory, key: str) -> Job | None:
    with sf() as session:
        return session.scalars(sa.select(Job).where(Job.idempotency_key == key)).one_or_none()


def find_succeeded_by_content(sf: SessionFactory, input_sha256: str, engine: str,
                              options: dict[str, Any]) -> Job | None:
    """A succeeded job on the same input bytes with the same engine and (canonical) options, newest first."""
    wanted = canonical_options(options)
    query = (sa.select(Job).where(Job.input_sha256 == input_sha256, Job.engine == engine,
                                  Job.state == JobState.SUCCEEDED)
             .order_by(Job.finished_at.desc()).limit(20))
    with sf() as session:
        return next((job for job in session.scalars(query) if canonical_options(job.options) == wanted), None)


def canonical_options(options: dict[str, Any] | None) -> str:
    """Options with the engine defaults filled in, as sorted JSON: {} and {"video": True} are the same request."""
    from shared.engines.base import Options

    defaults = {field.name: field.default for field in dataclasses.fields(Options)}
    return json.dumps({**defaults, **(options or {})}, sort_keys=True, separators=(",", ":"), default=str)


def get_job(sf: SessionFactory, job_id: str) -> Job:
    with sf() as session:
        job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"job {job_id} not found")
    return job


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
        query = query.where(Job.state == _parse_state(state))
    if owner_id is not None:
        query = query.where(Job.owner_id == owner_id)
    return keyset_page(sf, Job, query, cursor=cursor, limit=limit)


def keyset_page(sf: SessionFactory, model: Any, query: Any, *, cursor: str | None,
                limit: int) -> tuple[list[Any], str | None]:
    """One page of ``query`` newest first on (created_at, id) of ``model``, and the cursor of the next page."""
    if not 1 <= limit <= MAX_PAGE:
        raise Face3dError(f"limit must be between 1 and {MAX_PAGE}", ErrorCode.INVALID_REQUEST)
    query = query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
    if cursor:
        created_at, last_id = decode_cursor(cursor)
        query = query.where(sa.or_(model.created_at < created_at,
                                   sa.and_(model.created_at == created_at, model.id < last_id)))
    with sf() as session:
        rows = list(session.scalars(query))
    page = rows[:limit]
    return page, encode_cursor(page[-1]) if len(rows) > limit else None


def _parse_state(state: JobState | str) -> JobState:
    try:
        return JobState(state)
    except ValueError:
        choices = ", ".join(s.value for s in JobState)
        raise Face3dError(f"unknown state {state!r}; choose one of {choices}", ErrorCode.INVALID_REQUEST) from None


def encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, job_id = json.loads(raw)
        parsed = datetime.fromisoformat(created_at)
        if parsed.tzinfo is None or not isinstance(job_id, str):
            raise ValueError
        return parsed, job_id
    except (ValueError, TypeError, json.JSONDecodeError):
        raise Face3dError("cursor is not valid; use the one from the previous page", ErrorCode.INVALID_REQUEST) from None


# ---------------------------------------------------------------- state changes


def _transition(sf: SessionFactory, job_id: str, sources: Iterable[JobState], **values: Any) -> bool:
    with sf.begin() as session:
        return _update(session, job_id, sources, **values)


def _update(session: Session, job_id: str, sources: Iterable[JobState], **values: Any) -> bool:
    statement = (
        sa.update(Job).where(Job.id == job_id, Job.state.in_(list(sources)))
        .values(updated_at=utcnow(), **values).execution_options(synchronize_session=False)
    )
    return session.execute(statement).rowcount == 1


def mark_running(sf: SessionFactory, job_id: str, worker: str) -> bool:
    return _transition(sf, job_id, [JobState.QUEUED], state=JobState.RUNNING, attempts=Job.attempts + 1,
                       started_at=utcnow(), worker=worker[:255], stage="started", progress=0.0)


def report_progress(sf: SessionFactory, job_id: str, stage: str, progress: float) -> bool | None:
    """Record a running job's stage and progress, and read its cancel flag, in one round trip (the worker calls it
    at every stage). None: the job is no longer running; else whether a cancel was requested."""
    statement = (
        sa.update(Job).where(Job.id == job_id, Job.state == JobState.RUNNING)
        .values(updated_at=utcnow(), stage=stage[:64], progress=min(max(progress, 0.0), 1.0))
        .returning(Job.cancel_requested).execution_options(synchronize_session=False)
    )
    with sf.begin() as session:
        flag = session.execute(statement).scalar_one_or_none()
    return None if flag is None else bool(flag)


def mark_succeeded(sf: SessionFactory, job_id: str, result: dict[str, Any]) -> bool:
    return _transition(sf, job_id, [JobState.RUNNING], state=JobState.SUCCEEDED, result=result, stage="done",
                       progress=1.0, finished_at=utcnow())


def mark_failed(sf: SessionFactory, job_id: str, code: ErrorCode, message: str) -> bool:
    return _transition(sf, job_id, [JobState.QUEUED, JobState.RUNNING], state=JobState.FAILED,
                       error_code=ErrorCode(code).value, error_message=message[:MAX_ERROR_MESSAGE],
                       finished_at=utcnow())


def mark_canceled(sf: SessionFactory, job_id: str) -> bool:
    return _transition(sf, job_id, [JobState.QUEUED, JobState.RUNNING], state=JobState.CANCELED,
                       error_code=ErrorCode.CANCELED.value, error_message="canceled on request",
                       finished_at=utcnow())


def requeue(sf: SessionFactory, job_id: str) -> bool:
    """running -> queued, so the next delivery can run it again (after a lost worker)."""
    return _transition(sf, job_id, [JobState.RUNNING], state=JobState.QUEUED, stage=None, progress=0.0,
                       worker=None)


def cancel_job(sf: SessionFactory, job_id: str) -> Job:
    """Queued: canceled at once. Running: flagged; the worker stops at its next stage. Finished: Conflict."""
    with sf.begin() as session:
        canceled = _update(session, job_id, [JobState.QUEUED], state=JobState.CANCELED,
                           error_code=ErrorCode.CANCELED.value, error_message="canceled on request",
                           finished_at=utcnow())
        flagged = canceled or _update(session, job_id, [JobState.RUNNING], cancel_requested=True)
        job = session.get(Job, job_id)
        if job is None:
            raise NotFound(f"job {job_id} not found")
        if not flagged:
            raise Conflict(f"job {job_id} is already {job.state.value}")
        return job


# ---------------------------------------------------------------- liveness (heartbeat + sweeper)


def touch_heartbeat(sf: SessionFactory, job_id: str, worker: str) -> bool:
    """Stamp heartbeat_at; False once the job is no longer running under ``worker`` (finished, requeued, taken)."""
    with sf.begin() as session:
        statement = (
            sa.update(Job).where(Job.id == job_id, Job.state == JobState.RUNNING, Job.worker == worker[:255])
            .values(heartbeat_at=utcnow()).execution_options(synchronize_session=False)
        )
        return session.execute(statement).rowcount == 1


def last_sign_of_life(job: Job) -> datetime:
    """The newest moment a running job's worker was known alive (a heartbeat, a progress write or its start)."""
    return max(t for t in (job.heartbeat_at, job.updated_at) if t is not None)


def stale_running_jobs(sf: SessionFactory, silent_since: datetime, limit: int = 100) -> list[Job]:
    """Running jobs whose worker has shown no sign of life since ``silent_since``."""
    # updated_at covers progress writes and the start (mark_running), heartbeat_at the heartbeat thread.
    quiet_heartbeat = sa.or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < silent_since)
    query = (sa.select(Job).where(Job.state == JobState.RUNNING, Job.updated_at < silent_since, quiet_heartbeat)
             .order_by(Job.created_at).limit(limit))
    with sf() as session:
        return list(session.scalars(query))


def running_started_before(sf: SessionFactory, started_before: datetime, limit: int = 100) -> list[Job]:
    query = (sa.select(Job).where(Job.state == JobState.RUNNING, Job.started_at < started_before)
             .order_by(Job.created_at).limit(limit))
    with sf() as session:
        return list(session.scalars(query))


def queued_older_than(sf: SessionFactory, queued_before: datetime, limit: int = 100,
                      batch_items: bool | None = None) -> list[Job]:
    """Queued jobs that entered the queue (or were last resent) before ``queued_before``, oldest first.
    ``batch_items``: True only batch items, False only single jobs, None both."""
    query = (sa.select(Job).where(Job.state == JobState.QUEUED, Job.updated_at < queued_before)
             .order_by(Job.created_at).limit(limit))
    if batch_items is not None:
        query = query.where(Job.batch_id.is_not(None) if batch_items else Job.batch_id.is_(None))
    with sf() as session:
        return list(session.scalars(query))


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
    return _transition_if_unchanged(sf, job, [JobState.QUEUED], now)


def requeue_lost(sf: SessionFactory, job: Job, now: datetime | None = None) -> bool:
    """running -> queued for a job whose worker went silent, unless it showed a sign of life meanwhile."""
    return _transition_if_unchanged(sf, job, [JobState.RUNNING], now, state=JobState.QUEUED, stage=None, progress=0.0,
                                    worker=None, heartbeat_at=None)


def fail_lost(sf: SessionFactory, job: Job, code: ErrorCode, message: str, now: datetime | None = None) -> bool:
    return _transition_if_unchanged(sf, job, [JobState.RUNNING], now, state=JobState.FAILED,
                                    error_code=ErrorCode(code).value, error_message=message[:MAX_ERROR_MESSAGE],
                                    finished_at=now or utcnow())


def _transition_if_unchanged(sf: SessionFactory, job: Job, sources: Iterable[JobState], now: datetime | None,
                             **values: Any) -> bool:
    """Optimistic check on updated_at and heartbeat_at: any write since ``job`` was read makes this a no-op.
    ``now`` (default: the clock) becomes updated_at, so a sweep with a given clock stays consistent."""
    heartbeat = Job.heartbeat_at.is_(None) if job.heartbeat_at is None else Job.heartbeat_at == job.heartbeat_at
    statement = (
        sa.update(Job).where(Job.id == job.id, Job.state.in_(list(sources)), Job.updated_at == job.updated_at,
                             heartbeat)
        .values(updated_at=now or utcnow(), **values).execution_options(synchronize_session=False)
    )
    with sf.begin() as session:
        return session.execute(statement).rowcount == 1


# Tables defined in their own modules register on Base.metadata whenever the job model is imported (migrations'
# autogenerate compare, create_all in tools).
from shared import batches as _batches  # noqa: E402,F401  (imported last: it builds on the names above)
