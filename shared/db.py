"""Database engine and session factory, and Alembic migrations driven from code (no alembic.ini needed)."""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000


class Base(DeclarativeBase):
    pass


def make_engine(url: str) -> sa.Engine:
    """An engine tuned per backend: SQLite gets WAL and a busy timeout so API and workers can share the file."""
    parsed = make_url(url)
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


def make_session_factory(engine: sa.Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: verbs hand back rows that stay readable after their transaction ends.
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not a main option, so '%' in passwords needs no ini escaping.
    config.attributes["database_url"] = url
    return config


def import_models() -> None:
    """Import every module that defines tables, so Base.metadata is complete (migrations, schema comparison)."""
    import shared.auth  # noqa: F401
    import shared.batches  # noqa: F401
    import shared.models  # noqa: F401
    import shared.webhooks  # noqa: F401


def upgrade(url: str, revision: str = "heads") -> None:
    """Bring the database at ``url`` to ``revision`` (idempotent). "heads": every branch, if features branched."""
    command.upgrade(alembic_config(url), revision)


def head_revisions() -> set[str]:
    """The revisions a fully migrated database is at, read from the migration scripts."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revisions(url: str) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
