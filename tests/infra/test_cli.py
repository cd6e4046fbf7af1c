"""The `face3d` root group finds every package's commands through the "face3d.commands" entry points, and loads
only the one a call names: the client commands run without the service's libraries."""
from __future__ import annotations

import subprocess
import sys
import tomllib

import click

from tests.infra.layering import ROOT

SERVICE_LIBRARIES = {"sqlalchemy", "alembic", "celery", "kombu", "flask", "werkzeug", "mediapipe", "cv2", "numpy",
                     "boto3"}


def declared_commands() -> dict[str, str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return pyproject["project"]["entry-points"]["face3d.commands"]


def test_the_root_lists_exactly_the_declared_commands_and_each_loads():
    from face3d.shared.cli import command_entry_points, main

    declared = declared_commands()
    assert set(command_entry_points()) == set(declared), "reinstall (pip install -e .) after editing pyproject"
    assert main.list_commands(click.Context(main)) == sorted(declared)
    for name in declared:
        command = main.get_command(click.Context(main), name)
        assert isinstance(command, click.Command) and command.name == name


def loaded_after(argv: list[str]) -> set[str]:
    """Top-level modules (and face3d's packages) a fresh `face3d ARGV...` has imported once it is done."""
    script = ("import sys; from face3d.shared.cli import main\n"
              "try:\n    main(sys.argv[1:], standalone_mode=False)\nexcept SystemExit:\n    pass\n"
              "print('MODULES', *sorted({name.removeprefix('face3d.').split('.')[0] for name in sys.modules}))")
    result = subprocess.run([sys.executable, "-c", script, *argv], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.rsplit("MODULES", 1)[1].split())


def test_client_commands_load_no_service_library():
    for argv in (["submit", "--help"], ["status", "--help"], ["download", "--help"], ["ingest", "--help"]):
        loaded = loaded_after(argv)
        assert loaded & SERVICE_LIBRARIES == set(), (argv, loaded & SERVICE_LIBRARIES)
        assert "client" in loaded and not {"api", "worker"} & loaded, argv


def test_the_measure_sees_a_service_command_load_its_libraries():
    assert "celery" in loaded_after(["worker", "--help"])
