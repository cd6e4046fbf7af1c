"""The client commands, run on users' machines: submit, status, download, `jobs list|cancel|delete|retry`, and
ingest (a whole folder, zip, JSONL manifest or s3:// prefix as one batch).

Exit codes: 0 success; 1 the server refused or a job failed (`submit --wait`, `jobs retry --wait`) or, for
`ingest`, any item failed; 2 usage error. Every error is one line, `error: <code>: <message>`.
"""
from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import click

from face3d.shared.errors import Face3dError
from face3d.shared.schema import chosen, click_options

if TYPE_CHECKING:
    from face3d.client.http import Face3dClient
    from face3d.shared.schema import Job

_server_option = click.option("--server", "server", default=None, metavar="URL",
                              help="API base URL (default: $FACE3D_SERVER or http://127.0.0.1:8000).")
_api_key_option = click.option("--api-key", "api_key", envvar="FACE3D_API_KEY", default=None, metavar="KEY",
                               help="API key sent as 'Authorization: Bearer KEY' (default: $FACE3D_API_KEY).")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")


def _client(server: str | None, api_key: str | None) -> "Face3dClient":
    from face3d.client.http import Face3dClient

    return Face3dClient(server, api_key=api_key)


@click.command()
@click.argument("photo", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_server_option
@_api_key_option
@click.option("--wait/--no-wait", default=False, help="Wait for the job to finish, showing its progress.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds to wait with --wait.")
@click.option("-o", "--output", "outdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="With --wait: download the results into OUTPUT/<photo stem>/.")
@click.option("-q", "--quiet", is_flag=True, help="Print only the job id (for scripts).")
@_json_option
@click_options("submit", server_defaults=True)
def submit(photo: Path, server: str | None, api_key: str | None, wait: bool, timeout: float, outdir: Path | None,
           quiet: bool, as_json: bool, **options: Any) -> None:
    """Send PHOTO (any JPEG, PNG or WebP with a face) to the server as a new job. The job id is printed at once;
    options left out take the server's defaults, shown below."""
    if outdir and not wait:
        raise click.UsageError("-o/--output downloads the results, so it needs --wait")
    client = _client(server, api_key)
    with _errors_to_exit():
        job = client.submit(photo, chosen(options))
        _announce(job, quiet, as_json)
        if wait:
            job = _follow(client, job, timeout, quiet or as_json)
        if outdir and job.state.value == "succeeded":
            paths = client.download(job.id, outdir, folder=photo.stem)
            _note(f"wrote {len(paths)} file(s) into {outdir / photo.stem}", quiet)
    if not quiet:
        _print_job(job, as_json)
    if wait and job.state.value != "succeeded":
        sys.exit(1)


@click.command()
@click.argument("job_id")
@_server_option
@_api_key_option
@_json_option
def status(job_id: str, server: str | None, api_key: str | None, as_json: bool) -> None:
    """Show the state of job JOB_ID: stage and progress, faces and their warnings, error, files."""
    with _errors_to_exit():
        job = _client(server, api_key).get(job_id)
    _print_job(job, as_json)


@click.command()
@click.argument("job_id")
@click.option("-o", "--output", "outdir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write into: the files go to OUTPUT/<job id>/.")
@_server_option
@_api_key_option
def download(job_id: str, outdir: Path, server: str | None, api_key: str | None) -> None:
    """Download every result file of job JOB_ID into OUTPUT/JOB_ID/ (so two jobs never overwrite each other)."""
    with _errors_to_exit():
        paths = _client(server, api_key).download(job_id, outdir)
    for path in paths:
        click.echo(str(path))


# ---------------------------------------------------------------- face3d jobs ...


@click.group()
def jobs() -> None:
    """List, cancel, delete and retry jobs on the server."""


@jobs.command("list")
@click.option("--state", type=click.Choice(["queued", "running", "succeeded", "failed", "canceled"]), default=None,
              help="Only jobs in this state.")
@click.option("--limit", type=click.IntRange(1, 200), default=20, show_default=True, help="How many, newest first.")
@_server_option
@_api_key_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per job.")
def list_jobs(state: str | None, limit: int, server: str | None, api_key: str | None, as_json: bool) -> None:
    """List jobs, newest first: id, state, photo, faces, error."""
    with _errors_to_exit():
        page = _client(server, api_key).list(state=state, limit=limit)
    for job in page.items:
        if as_json:
            click.echo(job.model_dump_json())
            continue
        outcome = f"{job.error.code}: {job.error.message}" if job.error else f"{len(job.faces)} face(s)"
        click.echo(f"{job.id}  {job.state.value:<9}  {job.created_at:%Y-%m-%d %H:%M:%S}  "
                   f"{(job.input_name or '-')[:32]:<32}  {outcome}")
    if page.next_cursor and not as_json:
        click.echo("(more jobs: raise --limit, or narrow with --state)")


@jobs.command("cancel")
@click.argument("job_id")
@_server_option
@_api_key_option
def cancel_job(job_id: str, server: str | None, api_key: str | None) -> None:
    """Cancel JOB_ID: a queued job at once, a running one at its next stage."""
    with _errors_to_exit():
        job = _client(server, api_key).cancel(job_id)
    click.echo(f"job {job.id}: {'cancel requested' if job.state.value == 'running' else job.state.value}")


@jobs.command("delete")
@click.argument("job_id")
@_server_option
@_api_key_option
def delete_job(job_id: str, server: str | None, api_key: str | None) -> None:
    """Delete JOB_ID with its stored photo and results (a running job: cancel it first)."""
    with _errors_to_exit():
        _client(server, api_key).delete(job_id)
    click.echo(f"job {job_id}: deleted")


@jobs.command("retry")
@click.argument("job_id")
@click.option("--wait/--no-wait", default=False, help="Wait for the new job to finish, showing its progress.")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds to wait with --wait.")
@_server_option
@_api_key_option
@_json_option
def retry_job(job_id: str, wait: bool, timeout: float, server: str | None, api_key: str | None,
              as_json: bool) -> None:
    """Submit failed job JOB_ID's photo again, with the same options, as a new job linked to it."""
    client = _client(server, api_key)
    with _errors_to_exit():
        job = client.retry(job_id)
        _announce(job, False, as_json)
        if wait:
            job = _follow(client, job, timeout, as_json)
    _print_job(job, as_json)
    if wait and job.state.value != "succeeded":
        sys.exit(1)


# ---------------------------------------------------------------- face3d ingest


@click.command(epilog="Exit status: 0 when every item succeeded, 1 when any failed (each failure has its line in "
                      "OUTPUT, with the reason) or the run stopped, 2 on a usage error.")
@click.argument("source")
@_server_option
@_api_key_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("results.jsonl"),
              show_default=True, help="Results file (JSON Lines); progress is kept beside it in OUTPUT.state.")
@click.option("--concurrency", "-c", type=click.IntRange(min=1, max=64), default=4, show_default=True,
              help="Parallel uploads.")
@click.option("--timeout", type=float, default=None, help="Give up waiting after this many seconds (rerun resumes).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
@click_options("ingest", server_defaults=True)
def ingest(source: str, server: str | None, api_key: str | None, output: Path, concurrency: int,
           timeout: float | None, progress: bool, **options: Any) -> None:
    """Process every photo of SOURCE as one batch: a folder (recursively), a .zip, a .jsonl manifest (lines like
    {"path": "photos/a.jpg"}, paths relative to the manifest's folder, or {"url": "s3://bucket/key"}) or an
    s3://bucket/prefix.

    Files in a folder or zip that are not photos (by their bytes: JPEG, PNG, WebP, GIF, BMP, TIFF) are skipped and
    listed once at the end. Rerunning the same command after a crash or Ctrl-C continues where it stopped:
    finished items are not redone.
    """
    from face3d.client.http import Face3dClient
    from face3d.client.ingest import Ingest

    run = Ingest(source, output, lambda: Face3dClient(server, api_key=api_key), chosen(options),
                 concurrency=concurrency, progress=progress)
    try:
        report = run.run(timeout_s=timeout)
    except KeyboardInterrupt:
        click.echo(run.interrupted_message(), err=True)
        sys.exit(130)
    except Face3dError as exc:
        click.echo(f"error: {exc.code.value}: {exc.message}", err=True)
        sys.exit(1)
    summary = ", ".join(f"{count} {state}" for state, count in sorted(report.counts.items())) or "nothing to do"
    click.echo(f"batch {report.batch_id}: {report.total} item(s): {summary} -> {output}")
    if report.skipped:
        click.echo(f"skipped {len(report.skipped)} file(s) that are not photos: {', '.join(report.skipped)}")
    if report.failed:
        click.echo(f"{report.failed} item(s) failed; see their lines in {output} (error.code, error.message)",
                   err=True)
        sys.exit(1)


# ---------------------------------------------------------------- output


@contextmanager
def _errors_to_exit() -> Iterator[None]:
    """Print a typed error as one line and exit 1 instead of showing a traceback."""
    try:
        yield
    except Face3dError as error:
        click.echo(f"error: {error.code.value}: {error.message}", err=True)
        sys.exit(1)


def _note(text: str, quiet: bool) -> None:
    if not quiet:
        click.echo(text, err=True)


def _announce(job: "Job", quiet: bool, as_json: bool) -> None:
    """The id, at once: on stdout (alone with --quiet), or on stderr when stdout is kept for the JSON."""
    if quiet:
        click.echo(job.id)
    else:
        click.echo(f"job {job.id}: {job.state.value}", err=as_json)


def _follow(client: "Face3dClient", job: "Job", timeout: float, quiet: bool) -> "Job":
    def show(update: "Job") -> None:
        if not update.state.is_terminal:
            _note(f"  {update.state.value}: {update.stage or 'waiting for a worker'} {update.progress:.0%}", quiet)

    return job if job.state.is_terminal else client.wait(job.id, timeout=timeout, on_update=show)


def _print_job(job: "Job", as_json: bool) -> None:
    if as_json:
        click.echo(job.model_dump_json(indent=2))
        return
    running = f" ({job.stage}, {job.progress:.0%})" if job.stage and not job.state.is_terminal else ""
    click.echo(f"job {job.id}: {job.state.value}{running}")
    if job.retry_of:
        click.echo(f"  retry of job {job.retry_of}")
    if job.error:
        click.echo(f"  error: {job.error.code}: {job.error.message}")
    for face in job.faces:
        x0, y0, x1, y1 = face.bbox
        warnings = f"  warnings: {', '.join(face.warnings)}" if face.warnings else ""
        click.echo(f"  face {face.index}: box ({x0:.0f},{y0:.0f})-({x1:.0f},{y1:.0f}) score {face.score:.2f} "
                   f"yaw {face.yaw:+.0f} pitch {face.pitch:+.0f} roll {face.roll:+.0f}{warnings}")
    if job.warnings:
        click.echo(f"  photo warnings: {', '.join(job.warnings)}")
    for artifact in job.artifacts:
        click.echo(f"  {artifact.name}  {artifact.url}")
