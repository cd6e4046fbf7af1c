"""`face3d ingest`: send a folder, zip, JSONL manifest or s3:// prefix to the server as one batch; write results."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from shared.errors import Face3dError


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
    from api.client import Face3dClient
    from shared.ingest import Ingest

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


if __name__ == "__main__":
    ingest()
