"""Alembic migrations, shipped inside the package and driven from code (no alembic.ini needed).

env.py imports shared.models, so Base.metadata holds every table when Alembic compares or migrates.
"""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not a main option, so '%' in passwords needs no ini escaping.
    config.attributes["database_url"] = url
    return config


def upgrade(url: str, revision: str = "heads") -> None:
    """Bring the database at ``url`` to ``revision`` (idempotent). "heads": every branch, if features branched."""
    command.upgrade(alembic_config(url), revision)


def head_revisions() -> set[str]:
    """The revisions a fully migrated database is at, read from the migration scripts."""
    from alembic.script import ScriptDirectory

    return set(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


def current_revisions(url: str) -> set[str]:
    from alembic.runtime.migration import MigrationContext

    from face3d.shared.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
