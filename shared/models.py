"""Every table of the service, rows only: Job, Batch, ApiKey, WebhookDelivery. Importing this module completes
Base.metadata (migrations, schema comparison). The verbs that read and write them live in shared/jobs.py,
shared/batches.py, shared/keys.py and shared/webhooks.py.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from face3d.shared.db import Base, JSONType, UTCDateTime
from face3d.shared.states import TERMINAL_STATES, JobState

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
    owner_id: Mapped[str | None] = mapped_column(sa.String(32))      # the ApiKey that submitted it
    webhook_url: Mapped[str | None] = mapped_column(sa.Text())
    batch_id: Mapped[str | None] = mapped_column(sa.String(32))      # the Batch it belongs to, if any
    retry_of: Mapped[str | None] = mapped_column(sa.String(32))      # the failed job this one retries, if any

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    def __repr__(self) -> str:
        return f"Job(id={self.id!r}, state={self.state.value!r}, engine={self.engine!r})"


class Batch(Base):
    """What a batch's items share (engine, options, owner) and how many it has; counts, progress and results are
    read from its jobs, so each photo has one source of truth."""

    __tablename__ = "batches"
    __table_args__ = (sa.Index("ix_batches_owner_id_created_at", "owner_id", "created_at"),)

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    owner_id: Mapped[str | None] = mapped_column(sa.String(32))
    name: Mapped[str | None] = mapped_column(sa.String(255))
    engine: Mapped[str] = mapped_column(sa.String(32))
    options: Mapped[dict[str, Any]] = mapped_column(JSONType)
    source: Mapped[str] = mapped_column(sa.String(1024))
    total: Mapped[int] = mapped_column(sa.Integer(), default=0, server_default="0")
    # Expansion (a worker turns a stored source into items page by page): where the source is, how many of its
    # entries are items already (the resume point), when it finished (None: still expanding) and why it stopped.
    source_key: Mapped[str | None] = mapped_column(sa.String(1024))
    expanded: Mapped[int] = mapped_column(sa.Integer(), default=0, server_default="0")
    expanded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    expand_error: Mapped[str | None] = mapped_column(sa.Text())
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def __repr__(self) -> str:
        return f"Batch(id={self.id!r}, total={self.total}, source={self.source!r})"


class ApiKey(Base):
    """Only the token's SHA-256 is stored; the webhook secret is stored in clear because the workers sign with it."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    prefix: Mapped[str] = mapped_column(sa.String(16))
    token_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    webhook_secret: Mapped[str] = mapped_column(sa.String(100))
    is_admin: Mapped[bool] = mapped_column(sa.Boolean(), default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def __repr__(self) -> str:
        return f"ApiKey(id={self.id!r}, prefix={self.prefix!r}, admin={self.is_admin})"


class WebhookDelivery(Base):
    """One delivery attempt of a job's webhook."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (sa.Index("ix_webhook_deliveries_job_id_attempt", "job_id", "attempt"),)

    id: Mapped[int] = mapped_column(sa.Integer(), primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"))
    msg_id: Mapped[str] = mapped_column(sa.String(64))
    attempt: Mapped[int] = mapped_column(sa.Integer())
    url: Mapped[str] = mapped_column(sa.Text())
    status_code: Mapped[int | None] = mapped_column(sa.Integer())
    error: Mapped[str | None] = mapped_column(sa.Text())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300
