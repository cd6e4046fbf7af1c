"""`face3d db ...`: database maintenance."""
from __future__ import annotations

import click


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command()
@click.option("--url", default=None, help="Database URL (default: DATABASE_URL or the embedded SQLite file).")
@click.option("--revision", default="heads", show_default=True)
def upgrade(url: str | None, revision: str) -> None:
    """Create or migrate the schema (safe to run again)."""
    from shared.config import load_settings
    from shared.migrations import current_revisions, upgrade as run_upgrade

    url = url or load_settings().database_url
    run_upgrade(url, revision)
    click.echo(f"database at revision {', '.join(sorted(current_revisions(url)))}")


@db.command()
@click.option("--url", default=None, help="Database URL (default: DATABASE_URL or the embedded SQLite file).")
def current(url: str | None) -> None:
    """Print the schema revision of the database."""
    from shared.config import load_settings
    from shared.migrations import current_revisions

    click.echo(", ".join(sorted(current_revisions(url or load_settings().database_url))) or "empty")
