"""Alembic from code: upgrade works on an empty SQLite file and an empty PostgreSQL database, and is repeatable."""
from __future__ import annotations

import sqlalchemy as sa

from face3d.shared.migrations import current_revisions, head_revisions, upgrade
from face3d.shared.db import make_engine


def test_upgrade_empty_sqlite_file_twice(tmp_path):
    url = f"sqlite:///{tmp_path / 'deep' / 'folder' / 'fresh.db'}"
    upgrade(url)
    upgrade(url)
    assert current_revisions(url) == head_revisions() != set()
    _assert_jobs_schema(url)


def test_upgrade_postgres(postgres_url):
    upgrade(postgres_url)
    assert current_revisions(postgres_url) == head_revisions() != set()
    _assert_jobs_schema(postgres_url)


def test_downgrade_and_upgrade_again(tmp_path):
    from alembic import command

    from face3d.shared.migrations import alembic_config

    url = f"sqlite:///{tmp_path / 'd.db'}"
    upgrade(url)
    command.downgrade(alembic_config(url), "base")
    assert "jobs" not in sa.inspect(make_engine(url)).get_table_names()
    upgrade(url)
    _assert_jobs_schema(url)


def test_models_match_migrations(db_url):
    """The ORM metadata and the migrated schema agree (alembic autogenerate finds nothing to add)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    import face3d.shared.models  # noqa: F401  (every table on Base.metadata)
    from face3d.shared.db import Base

    engine = make_engine(db_url)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert [d for d in diff if d[0] in ("add_table", "add_column", "remove_column", "add_index", "remove_index")] == []


def _assert_jobs_schema(url: str) -> None:
    engine = make_engine(url)
    inspector = sa.inspect(engine)
    columns = {column["name"] for column in inspector.get_columns("jobs")}
    assert {"id", "state", "engine", "options", "idempotency_key", "result", "cancel_requested",
            "created_at", "finished_at"} <= columns
    indexes = {index["name"]: index["column_names"] for index in inspector.get_indexes("jobs")}
    assert indexes["ix_jobs_state_created_at"] == ["state", "created_at"]
    uniques = [u["column_names"] for u in inspector.get_unique_constraints("jobs")]
    assert ["idempotency_key"] in uniques or any(
        i["unique"] and i["column_names"] == ["idempotency_key"] for i in inspector.get_indexes("jobs"))
    engine.dispose()
