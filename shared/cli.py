"""The ``face3d`` console script. Each sub-command lives beside the code it drives and imports heavy modules lazily."""
from __future__ import annotations

import click


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="face3d")
def main() -> None:
    """face3d: photos in, textured 3D faces out."""


def _register() -> None:
    from shared.cli_reconstruct import reconstruct
    from shared.db_cli import db
    from api.cli import submit, status, download, serve
    from worker.cli import worker

    for command in (reconstruct, db, submit, status, download, serve, worker):
        main.add_command(command)
    from worker.sweeper import sweeper

    main.add_command(sweeper)

    from shared.keys_cli import keys

    main.add_command(keys)

    from shared.ingest_cli import ingest

    main.add_command(ingest)


_register()
