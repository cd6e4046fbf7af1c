"""The database plumbing every table and verb uses: the declarative base, column types, engines and sessions, and
the one keyset pagination (newest first on created_at, id) with its opaque cursor. No table lives here
(shared/models.py) and no migration (shared/migrations)."""
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from face3d.shared.errors import ErrorCode, Face3dError, NotFound

SQLITE_BUSY_TIMEOUT_MS = 30_000
POSTGRES_CONNECT_TIMEOUT_S = 5
MAX_PAGE = 200
SessionFactory = sessionmaker[Session]


class Base(DeclarativeBase):
    pass


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


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(url: str) -> sa.Engine:
    """An engine tuned per backend: SQLite gets WAL and a busy timeout so API and workers can share the file."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        # A database that stops answering (a partition rather than a refusal) must not hang a worker or request.
        return sa.create_engine(parsed, pool_pre_ping=True, future=True,
                                connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S})
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True, future=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        parsed, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    )
    sa.event.listen(engine, "connect", _configure_sqlite)
    return engine


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_session_factory(engine: sa.Engine) -> SessionFactory:
    # expire_on_commit=False: verbs hand back rows that stay readable after their transaction ends.
    return sessionmaker(bind=engine, expire_on_commit=False)


def session_factory_for(database_url: str) -> SessionFactory:
    """A session factory on a new engine for ``database_url`` (dispose it with ``factory.kw["bind"].dispose()``)."""
    return make_session_factory(make_engine(database_url))


def get_row(sf: SessionFactory, model: Any, row_id: Any, what: str) -> Any:
    """The row of ``model`` with primary key ``row_id``, or NotFound("<what> not found")."""
    with sf() as session:
        row = session.get(model, row_id)
    if row is None:
        raise NotFound(f"{what} not found")
    return row


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


def encode_cursor(row: Any) -> str:
    raw = json.dumps([row.created_at.isoformat(), row.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = json.loads(raw)
        parsed = datetime.fromisoformat(created_at)
        if parsed.tzinfo is None or not isinstance(row_id, str) or not row_id.isascii() or not row_id.isalnum():
            raise ValueError
        return parsed, row_id
    except (ValueError, TypeError, json.JSONDecodeError):
        raise Face3dError("cursor is not valid; use the one from the previous page", ErrorCode.INVALID_REQUEST) from None
