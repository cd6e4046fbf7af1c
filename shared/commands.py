"""The commands that drive shared/ directly: `face3d reconstruct` (the engine on local photos, no service),
`face3d db upgrade|current` and `face3d keys create|list|revoke`. The root `face3d` group (shared/cli.py) finds them,
like every package's commands, through the "face3d.commands" entry points.

`face3d reconstruct` exit codes: 0 every photo succeeded, 1 at least one failed (the others are still written),
2 usage error.
"""
from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import click

from face3d.shared.engines.base import Options
from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.mediatypes import images_in
from face3d.shared.options import RECONSTRUCT, click_options

ROW = "{photo:<32} {faces:>5}  {yaw:<24} {warnings:<40} {ms:>7}"


@dataclass
class Outcome:
    photo: str
    ok: bool
    line: str


def output_dirs(photos: list[Path], outdir: Path) -> list[Path]:
    """One photo writes into OUTDIR; several write into OUTDIR/<stem>, with _2, _3... for repeated stems."""
    if len(photos) == 1:
        return [outdir]
    seen: dict[str, int] = {}
    dirs = []
    for photo in photos:
        seen[photo.stem] = seen.get(photo.stem, 0) + 1
        suffix = "" if seen[photo.stem] == 1 else f"_{seen[photo.stem]}"
        dirs.append(outdir / f"{photo.stem}{suffix}")
    return dirs


def _require_writable(outputs: tuple[str, ...]) -> None:
    """USDZ needs the `usd` extra: said before any photo is read."""
    if "usdz" in outputs:
        from face3d.shared.artifacts.usdz import USD_EXTRA, usdz_available

        if not usdz_available():
            raise click.BadParameter(USD_EXTRA, param_hint="--outputs")


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _run_one(photo: Path, outdir: Path, engine, options: Options) -> Outcome:
    from face3d.shared.pipeline import process_photo

    start = time.perf_counter()
    try:
        result = process_photo(photo.read_bytes(), photo.name, engine, options, outdir)
    except Face3dError as exc:
        message = exc.message.removeprefix(f"{photo.name}: ")
        return Outcome(photo.name, False, f"{photo.name}: {exc.code.value}: {message}")
    except OSError as exc:
        return Outcome(photo.name, False, f"{photo.name}: {ErrorCode.INVALID_IMAGE.value}: cannot read ({exc})")
    faces = result.reconstruction.faces
    warnings = sorted({w for face in faces for w in face.warnings} | set(result.reconstruction.warnings))
    line = ROW.format(
        photo=_short(photo.name, 32), faces=len(faces), yaw=_short(" ".join(f"{f.yaw:+.0f}" for f in faces), 24),
        warnings=_short(",".join(warnings) or "-", 40), ms=f"{(time.perf_counter() - start) * 1000:.0f}",
    )
    return Outcome(photo.name, True, line)


def _load_engine(name: str):
    from face3d.shared.engines import get_engine

    try:
        return get_engine(name)
    except Face3dError as exc:
        raise click.ClickException(f"{exc.code.value}: {exc.message}") from exc
    except ImportError as exc:
        raise click.ClickException(f"{ErrorCode.ENGINE_UNAVAILABLE.value}: engine {name!r} cannot load ({exc})") from exc


@click.command()
@click.argument("photos", nargs=-1, required=True,
                type=click.Path(exists=True, readable=True, path_type=Path))
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (one sub-folder per photo when several are given).")
@click_options(RECONSTRUCT, server_defaults=False)
def reconstruct(photos: tuple[Path, ...], outdir: Path, engine: str, **chosen_options: Any) -> None:
    """Reconstruct 3D faces from PHOTOS (files or folders) into OUTDIR (OBJ/MTL/PNG, GLB, vis.png, turntable,
    result.json; on request STL, 3MF, PLY, USDZ). A folder gives every photo in it (recursively); other files there
    are skipped and listed."""
    _require_writable(chosen_options["outputs"])
    options = Options(**chosen_options)
    files, skipped = images_in(list(photos))
    if not files:
        raise click.UsageError(f"no photo (JPEG, PNG, WebP, ...) in {', '.join(map(str, photos))}")
    loaded = _load_engine(engine)
    click.echo(ROW.format(photo="photo", faces="faces", yaw="yaw", warnings="warnings", ms="ms"))
    outcomes = []
    for photo, target in zip(files, output_dirs(files, outdir)):
        outcome = _run_one(photo, target, loaded, options)
        click.echo(outcome.line)
        outcomes.append(outcome)
    failed = [o for o in outcomes if not o.ok]
    click.echo(f"{len(outcomes) - len(failed)} of {len(outcomes)} photos reconstructed into {outdir}")
    if skipped:
        click.echo(f"skipped {len(skipped)} file(s) that are not photos: {', '.join(map(str, skipped))}")
    if failed:
        raise SystemExit(1)


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command()
@click.option("--url", default=None, help="Database URL (default: DATABASE_URL or the embedded SQLite file).")
@click.option("--revision", default="heads", show_default=True)
def upgrade(url: str | None, revision: str) -> None:
    """Create or migrate the schema (safe to run again)."""
    from face3d.shared.config import load_settings
    from face3d.shared.migrations import current_revisions, upgrade as run_upgrade

    url = url or load_settings().database_url
    run_upgrade(url, revision)
    click.echo(f"database at revision {', '.join(sorted(current_revisions(url)))}")


@db.command()
@click.option("--url", default=None, help="Database URL (default: DATABASE_URL or the embedded SQLite file).")
def current(url: str | None) -> None:
    """Print the schema revision of the database."""
    from face3d.shared.config import load_settings
    from face3d.shared.migrations import current_revisions

    click.echo(", ".join(sorted(current_revisions(url or load_settings().database_url))) or "empty")




@click.group()
def keys() -> None:
    """Manage API keys (used when AUTH_MODE=on), in the database `face3d serve` uses: DATABASE_URL, or the
    SQLite file in --data-dir ($FACE3D_DATA_DIR, default ./data). Each command says which database it uses."""


_data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="The data folder of `face3d serve` (default: $FACE3D_DATA_DIR or ./data); ignored when DATABASE_URL is "
         "set.")


@keys.command("create")
@click.option("--name", default="", help="A label for the key, e.g. the client's name.")
@click.option("--admin", is_flag=True, help="The key sees and manages every key's jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print the new key as JSON.")
@_data_dir_option
def create(name: str, admin: bool, as_json: bool, data_dir: Path | None) -> None:
    """Create a key and print its token and webhook secret (shown only this once). The database is made (and
    migrated) if it does not exist yet, so keys can exist before the first start."""
    from face3d.shared.keys import create_key

    with _session_factory(data_dir, create_missing=True) as sf:
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
@_data_dir_option
def list_command(as_json: bool, data_dir: Path | None) -> None:
    """List keys (id, prefix, name, admin, created, revoked); never the tokens."""
    from face3d.shared.keys import list_keys

    with _session_factory(data_dir) as sf:
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
@_data_dir_option
def revoke(key_id: str, data_dir: Path | None) -> None:
    """Revoke KEY_ID (the id or the shown prefix, e.g. f3d_AbCd1234): it gets 401 from now on."""
    from face3d.shared.keys import revoke_key

    with _session_factory(data_dir) as sf:
        key = revoke_key(sf, key_id)
    click.echo(f"revoked key {key.id} ({key.prefix}...)")


@contextmanager
def _session_factory(data_dir: Path | None, create_missing: bool = False) -> Iterator:
    """A session factory on the service's database, named on stderr; typed errors become one line and exit
    status 1. A database that does not exist yet (or has no face3d schema) is refused unless ``create_missing``:
    listing keys of an empty database made by mistake in the wrong folder would only say "no keys"."""
    from face3d.shared.config import load_settings
    from face3d.shared.db import make_engine, make_session_factory
    from face3d.shared.migrations import upgrade

    engine = None
    try:
        settings = load_settings(data_dir=data_dir)
        shown = _describe_database(settings.database_url)
        if not _database_exists(settings.database_url):
            if not create_missing:
                raise Face3dError(f"no face3d database at {shown}; pass the data folder `face3d serve` uses "
                                  "(--data-dir DIR or FACE3D_DATA_DIR), or set DATABASE_URL", ErrorCode.NOT_FOUND)
            click.echo(f"database: {shown} (new)", err=True)
        else:
            click.echo(f"database: {shown}", err=True)
        upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        yield make_session_factory(engine)
    except Face3dError as error:            # ConfigError included
        click.echo(f"error: {error.code.value}: {error.message}", err=True)
        sys.exit(1)
    finally:
        if engine is not None:
            engine.dispose()


def _describe_database(url: str) -> str:
    import sqlalchemy as sa

    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"{parsed.database} (SQLite)"
    return parsed.render_as_string(hide_password=True)


def _database_exists(url: str) -> bool:
    """The database has a face3d schema; for SQLite, checked without creating the file."""
    import sqlalchemy as sa

    from face3d.shared.migrations import current_revisions

    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).is_file():
            return False
    try:
        return bool(current_revisions(url))
    except sa.exc.OperationalError:
        return False
