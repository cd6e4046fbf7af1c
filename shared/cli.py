"""The ``face3d`` console script: a root group that finds its sub-commands through the "face3d.commands" entry
points (pyproject.toml) and imports only the one a call names, as Flask finds ``flask.commands``. Each command lives
beside the code it drives (client/cli.py, worker/cli.py, api/serve.py, shared/commands.py), so `face3d submit`
loads the client and nothing of the service."""
from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import click

ENTRY_POINT_GROUP = "face3d.commands"


def command_entry_points() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}


class EntryPointGroup(click.Group):
    """A click group whose commands are the entry points of ENTRY_POINT_GROUP, each loaded when first needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(command_entry_points()) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.commands:
            entry = command_entry_points().get(name)
            if entry is None:
                return None
            self.add_command(entry.load(), name)
        return self.commands[name]


@click.group(cls=EntryPointGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="face3d")
def main() -> None:
    """face3d: photos in, textured 3D faces out."""


if __name__ == "__main__":
    main()
