"""`face3d keys create|list|revoke`: manage API keys in the configured database (DATABASE_URL)."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Iterator

import click

from shared.errors import Face3dError


@click.group()
def keys() -> None:
    """Manage API keys (used when AUTH_MODE=on)."""


@keys.command("create")
@click.option("--name", default="", help="A label for the key, e.g. the client's name.")
@click.option("--admin", is_flag=True, help="The key sees and manages every key's jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print the new key as JSON.")
def create(name: str, admin: bool, as_json: bool) -> None:
    """Create a key and print its token and webhook secret (shown only this once)."""
    from shared.keys import create_key

    with _session_factory() as sf:
        created = create_key(sf, name=name, admin=admin)
    key = created.key
    if as_json:
        click.echo(json.dumps({"id": key.id, "name": key.name, "prefix": key.prefix, "admin": key.is_admin,
                               "token": created.token, "webhook_secret": created.webhook_secret}))
        return
    click.echo(f"created {'admin ' if admin else ''}key {key.id} ({key.prefix}...){' ' + name if name else ''}")
    click.echo(f"API key:        {created.token}")
    click.echo(f"webhook secret: {created.webhook_secret}")
    click.echo("Store both now: they are not shown again. Send the key as 'Authorization: Bearer <key>' "
               "(face3d submit --api-key, or FACE3D_API_KEY).")


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the keys as JSON lines.")
def list_command(as_json: bool) -> None:
    """List keys (id, prefix, name, admin, created, revoked); never the tokens."""
    from shared.keys import list_keys

    with _session_factory() as sf:
        rows = list_keys(sf)
    for key in rows:
        revoked = key.revoked_at.isoformat() if key.revoked_at else None
        if as_json:
            click.echo(json.dumps({"id": key.id, "prefix": key.prefix, "name": key.name, "admin": key.is_admin,
                                   "created_at": key.created_at.isoformat(), "revoked_at": revoked}))
        else:
            click.echo(f"{key.id}  {key.prefix:<12}  {'admin' if key.is_admin else 'user ':<5}  "
                       f"{'revoked ' + revoked if revoked else 'active':<40}  {key.name}")


@keys.command("revoke")
@click.argument("key_id")
def revoke(key_id: str) -> None:
    """Revoke KEY_ID (the id or the shown prefix, e.g. f3d_AbCd1234): it gets 401 from now on."""
    from shared.keys import revoke_key

    with _session_factory() as sf:
        key = revoke_key(sf, key_id)
    click.echo(f"revoked key {key.id} ({key.prefix}...)")


@contextmanager
def _session_factory() -> Iterator:
    """A session factory on the migrated database; typed errors become one line and exit status 1."""
    from shared.config import load_settings
    from shared.db import make_engine, make_session_factory
    from shared.migrations import upgrade

    engine = None
    try:
        settings = load_settings()
        upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        yield make_session_factory(engine)
    except Face3dError as error:
        click.echo(f"error: {error.code.value}: {error.message}", err=True)
        sys.exit(1)
    finally:
        if engine is not None:
            engine.dispose()
