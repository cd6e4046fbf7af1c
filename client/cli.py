"""The client commands, run on users' machines: submit, status, download, and ingest (a whole folder, zip, JSONL
manifest or s3:// prefix as one batch)."""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import click

from face3d.shared.errors import Face3dError

if TYPE_CHECKING:
    from face3d.shared.schema import Job

_server_option = click.option("--server", "server", default=None, metavar="URL",
                              help="API base URL (default: $FACE3D_SERVER or http://127.0.0.1:8000).")
_api_key_option = click.option("--api-key", "api_key", envvar="FACE3D_API_KEY", default=None, metavar="KEY",
                               help="API key sent as 'Authorization: Bearer KEY' (default: $FACE3D_API_KEY).")


@click.command()
@click.argument("photo", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_server_option
@_api_key_option
@click.option("--wait/--no-wait", default=False, help="Wait for the job to finish and print its faces.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds to wait with --wait.")
@click.option("--engine", default=None, help="Engine name (cpu | hrn).")
@click.option("--max-faces", type=int, default=None)
@click.option("--video/--no-video", default=None, help="Render the turntable video.")
@click.option("--frames", type=int, default=None)
@click.option("--sweep-degrees", type=float, default=None)
@click.option("--texture-size", type=int, default=None)
@click.option("--render-size", type=int, default=None)
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
def submit(photo: Path, server: str | None, api_key: str | None, wait: bool, timeout: float, as_json: bool,
           **options: object) -> None:
    """Send PHOTO to the server as a new job."""
    from face3d.client.http import Face3dClient

    client = Face3dClient(server, api_key=api_key)
    with _errors_to_exit():
        job = client.submit(photo, options)
        if wait and not job.state.is_terminal:
            job = client.wait(job.id, timeout=timeout)
    _print_job(job, as_json)
    if wait and job.state.value != "succeeded":
        sys.exit(1)


@click.command()
@click.argument("job_id")
@_server_option
@_api_key_option
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
def status(job_id: str, server: str | None, api_key: str | None, as_json: bool) -> None:
    """Show the state of job JOB_ID."""
    from face3d.client.http import Face3dClient

    with _errors_to_exit():
        job = Face3dClient(server, api_key=api_key).get(job_id)
    _print_job(job, as_json)


@click.command()
@click.argument("job_id")
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the files into.")
@_server_option
@_api_key_option
def download(job_id: str, outdir: Path, server: str | None, api_key: str | None) -> None:
    """Download every result file of job JOB_ID."""
    from face3d.client.http import Face3dClient

    with _errors_to_exit():
        paths = Face3dClient(server, api_key=api_key).download(job_id, outdir)
    for path in paths:
        click.echo(str(path))


@click.command()
@click.argument("source")
@click.option("--server", default=None, metavar="URL",
              help="API base URL (default: $FACE3D_SERVER or http://127.0.0.1:8000).")
@click.option("--api-key", envvar="FACE3D_API_KEY", default=None, metavar="KEY",
              help="API key sent as 'Authorization: Bearer KEY' (default: $FACE3D_API_KEY).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("results.jsonl"),
              show_default=True, help="Results file (JSON Lines); progress is kept beside it in OUTPUT.state.")
@click.option("--concurrency", "-c", type=click.IntRange(min=1, max=64), default=4, show_default=True,
              help="Parallel uploads.")
@click.option("--engine", default=None, help="Engine name (cpu | hrn).")
@click.option("--max-faces", type=int, default=None)
@click.option("--video/--no-video", default=None, help="Render turntable videos (slow; off is much faster).")
@click.option("--texture-size", type=int, default=None)
@click.option("--timeout", type=float, default=None, help="Give up waiting after this many seconds (rerun resumes).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
def ingest(source: str, server: str | None, api_key: str | None, output: Path, concurrency: int,
           timeout: float | None, progress: bool, **options: object) -> None:
    """Process every photo of SOURCE (folder, .zip, .jsonl manifest or s3://bucket/prefix) as one batch.

    Rerunning the same command after a crash or Ctrl-C continues where it stopped: finished items are not redone.
    A file that is not a photo fails its own line, with the reason; the rest go on.
    """
    from face3d.client.http import Face3dClient
    from face3d.client.ingest import Ingest

    wanted = {key: value for key, value in options.items() if value is not None}
    run = Ingest(source, output, lambda: Face3dClient(server, api_key=api_key), wanted, concurrency=concurrency,
                 progress=progress)
    try:
        report = run.run(timeout_s=timeout)
    except Face3dError as exc:
        click.echo(f"error ({exc.code.value}): {exc.message}", err=True)
        sys.exit(1)
    summary = ", ".join(f"{count} {state}" for state, count in sorted(report.counts.items()))
    click.echo(f"batch {report.batch_id}: {report.total} item(s): {summary} -> {output}")


@contextmanager
def _errors_to_exit() -> Iterator[None]:
    """Print a typed error as one line and exit 1 instead of showing a traceback."""
    try:
        yield
    except Face3dError as error:
        click.echo(f"error: {error.code.value}: {error.message}", err=True)
        sys.exit(1)


def _print_job(job: "Job", as_json: bool) -> None:
    if as_json:
        click.echo(job.model_dump_json(indent=2))
        return
    click.echo(f"job {job.id}: {job.state.value}" + (f" ({job.stage}, {job.progress:.0%})" if job.stage and
                                                      not job.state.is_terminal else ""))
    if job.error:
        click.echo(f"  error: {job.error.code}: {job.error.message}")
    for face in job.faces:
        x0, y0, x1, y1 = face.bbox
        click.echo(f"  face {face.index}: box ({x0:.0f},{y0:.0f})-({x1:.0f},{y1:.0f}) score {face.score:.2f} "
                   f"yaw {face.yaw:+.0f} pitch {face.pitch:+.0f} roll {face.roll:+.0f}")
    for artifact in job.artifacts:
        click.echo(f"  {artifact.name}  {artifact.url}")
