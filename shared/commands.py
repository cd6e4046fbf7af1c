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
from typing import Iterator

import click

from face3d.shared.engines import engine_names
from face3d.shared.engines.base import Options
from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.schema import DEFAULT_OUTPUTS, OPTION_BOUNDS, OUTPUTS, TEXTURE_SIZES, UNITS



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


def parse_outputs(ctx: click.Context, param: click.Parameter, value: str) -> frozenset[str]:
    names = {name.strip() for name in value.split(",") if name.strip()}
    unknown = sorted(names - set(OUTPUTS))
    if unknown or not names:
        raise click.BadParameter(f"{', '.join(unknown) or 'nothing'}: choose from {','.join(OUTPUTS)}")
    if "usdz" in names:
        from face3d.shared.artifacts.usdz import USD_EXTRA, usdz_available

        if not usdz_available():
            raise click.BadParameter(USD_EXTRA)
    return frozenset(names | {"json"})


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


def option_range(name: str, kind: type = int) -> click.ParamType:
    """The click range of an engine option: the API's bounds (shared.schema.OPTION_BOUNDS), so both accept the same."""
    bounds = OPTION_BOUNDS[name]
    low = bounds.ge if bounds.ge is not None else bounds.gt
    kinds = {int: click.IntRange, float: click.FloatRange}
    return kinds[kind](low, bounds.le, min_open=bounds.gt is not None)


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
                type=click.Path(exists=True, dir_okay=False, readable=True, path_type=Path))
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder (one sub-folder per photo when several are given).")
@click.option("--max-faces", type=option_range("max_faces"), default=Options.max_faces, show_default=True)
@click.option("--outputs", default=",".join(DEFAULT_OUTPUTS), show_default=True, callback=parse_outputs,
              help=f"What to write, comma-separated, from {','.join(OUTPUTS)}; result.json always. 'json' alone "
                   "(landmarks and pose for a dataset) skips the textures too.")
@click.option("--units", type=click.Choice(UNITS), default=None,
              help="Length unit of OBJ, PLY and STL files [default: mm closed, m open]; 3MF is mm, GLB and USDZ m.")
@click.option("--solid", is_flag=True, help="Close the OBJ and PLY meshes into a solid too (STL and 3MF always are).")
@click.option("--print-height-mm", type=option_range("print_height_mm", float), default=None,
              help="Height of the closed solids in mm [default: life size].")
@click.option("--no-video", is_flag=True, help="Skip turntable.mp4 / turntable.gif (same as leaving 'video' out).")
@click.option("--frames", type=option_range("frames"), default=Options.frames, show_default=True)
@click.option("--sweep", "sweep_degrees", type=option_range("sweep_degrees", float), default=Options.sweep_degrees,
              show_default=True, help="Turntable yaw sweep in degrees (60 = +-30, 360 = full turn).")
@click.option("--texture-size", type=click.Choice([str(size) for size in TEXTURE_SIZES]),
              default=str(Options.texture_size), show_default=True, callback=lambda _ctx, _param, value: int(value))
@click.option("--render-size", type=option_range("render_size"), default=Options.render_size, show_default=True)
@click.option("--engine", "engine_name", type=click.Choice(list(engine_names())), default="cpu", show_default=True)
def reconstruct(photos: tuple[Path, ...], outdir: Path, max_faces: int, outputs: frozenset[str], units: str | None,
                solid: bool, print_height_mm: float | None, no_video: bool, frames: int, sweep_degrees: float,
                texture_size: int, render_size: int, engine_name: str) -> None:
    """Reconstruct 3D faces from PHOTO files into OUTDIR (OBJ/MTL/PNG, GLB, vis.png, turntable, result.json; on
    request STL, 3MF, PLY, USDZ)."""
    options = Options(max_faces=max_faces, video=not no_video, frames=frames, sweep_degrees=sweep_degrees,
                      texture_size=texture_size, render_size=render_size, outputs=outputs, units=units,
                      solid=solid, print_height_mm=print_height_mm)
    engine = _load_engine(engine_name)
    click.echo(ROW.format(photo="photo", faces="faces", yaw="yaw", warnings="warnings", ms="ms"))
    outcomes = []
    for photo, target in zip(photos, output_dirs(list(photos), outdir)):
        outcome = _run_one(photo, target, engine, options)
        click.echo(outcome.line)
        outcomes.append(outcome)
    failed = [o for o in outcomes if not o.ok]
    click.echo(f"{len(outcomes) - len(failed)} of {len(outcomes)} photos reconstructed into {outdir}")
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
    """Manage API keys (used when AUTH_MODE=on)."""


@keys.command("create")
@click.option("--name", default="", help="A label for the key, e.g. the client's name.")
@click.option("--admin", is_flag=True, help="The key sees and manages every key's jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print the new key as JSON.")
def create(name: str, admin: bool, as_json: bool) -> None:
    """Create a key and print its token and webhook secret (shown only this once)."""
    from face3d.shared.keys import create_key

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
    from face3d.shared.keys import list_keys

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
    from face3d.shared.keys import revoke_key

    with _session_factory() as sf:
        key = revoke_key(sf, key_id)
    click.echo(f"revoked key {key.id} ({key.prefix}...)")


@contextmanager
def _session_factory() -> Iterator:
    """A session factory on the migrated database; typed errors become one line and exit status 1."""
    from face3d.shared.config import load_settings
    from face3d.shared.db import make_engine, make_session_factory
    from face3d.shared.migrations import upgrade

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
