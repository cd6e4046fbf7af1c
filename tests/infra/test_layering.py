"""The layout's rules, read from the import graph of the source (tests/infra/layering.py):

- shared/ imports nothing from api/, worker/ or client/;
- api/, worker/ and client/ never import each other;
- client/ imports only shared.schema and shared.errors from the project, and no server-side library;
- no import cycle of any kind (module level or inside functions);
- only shared/jobs.py issues UPDATE on the jobs table.

KNOWN_* list today's exceptions. They may only shrink: a new violation fails, and so does an entry that no longer
happens (remove it).
"""
from __future__ import annotations

import sys

from tests.infra.layering import JOBS_WRITER, PACKAGES, cycles, jobs_table_writes, package_of, read_graph

CLIENT_MAY_IMPORT = {"shared.schema", "shared.errors"}
CLIENT_LIBRARIES = {"click", "requests", "tqdm", "pydantic"}      # besides the standard library
SIBLINGS = set(PACKAGES) - {"shared"}

KNOWN_UPWARD: set[tuple[str, str]] = set()
KNOWN_SIDEWAYS: set[tuple[str, str]] = set()
KNOWN_CYCLES: list[list[str]] = []
KNOWN_JOBS_WRITERS: set[str] = set()


def _edges():
    return read_graph()[0]


def _only_known(found: set, known: set, what: str) -> None:
    assert found - known == set(), f"new {what}: {sorted(found - known)}"
    assert known - found == set(), f"fixed {what}, remove from the KNOWN list: {sorted(known - found)}"


def test_shared_imports_no_sibling():
    found = {(e.source, e.target) for e in _edges()
             if package_of(e.source) == "shared" and package_of(e.target) in SIBLINGS}
    _only_known(found, KNOWN_UPWARD, "imports from shared/ into a sibling package")


def test_api_worker_and_client_never_import_each_other():
    found = {(e.source, e.target) for e in _edges()
             if package_of(e.source) in SIBLINGS and package_of(e.target) in SIBLINGS
             and package_of(e.source) != package_of(e.target)}
    _only_known(found, KNOWN_SIDEWAYS, "imports between api/, worker/ and client/")


def test_client_imports_only_the_public_schema_and_errors():
    edges, external = read_graph()
    project = {(e.source, e.target) for e in edges if package_of(e.source) == "client"
               and package_of(e.target) != "client" and e.target not in CLIENT_MAY_IMPORT}
    assert project == set(), f"client/ reaches into the service: {sorted(project)}"
    libraries = {(x.source, x.name) for x in external if package_of(x.source) == "client"
                 and x.name not in sys.stdlib_module_names and x.name not in CLIENT_LIBRARIES}
    assert libraries == set(), f"client/ imports server-side libraries: {sorted(libraries)}"


def test_no_import_cycle():
    found = cycles(_edges())
    assert [c for c in found if c not in KNOWN_CYCLES] == [], "new import cycle"
    assert [c for c in KNOWN_CYCLES if c not in found] == [], "a known cycle is gone or changed: update KNOWN_CYCLES"


def test_only_the_jobs_module_updates_the_jobs_table():
    writers = {write.module for write in jobs_table_writes() if write.module != JOBS_WRITER}
    _only_known(writers, KNOWN_JOBS_WRITERS, f"modules that UPDATE jobs outside {JOBS_WRITER}")


def test_the_graph_sees_the_imports_it_checks():
    """Guards the reader itself: a parser that saw nothing would pass every rule above."""
    edges = _edges()
    assert len(edges) > 100
    assert any(e.lazy for e in edges) and any(not e.lazy for e in edges)
    assert {package_of(e.source) for e in edges} >= {"shared", "api", "worker"}


def loaded_by(module: str) -> set[str]:
    """Top-level names of every module a fresh interpreter has loaded after importing ``module``."""
    import subprocess

    from tests.infra.layering import ROOT

    script = f"import sys, {module}; print(' '.join(sorted({{name.split('.')[0] for name in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_sending_a_webhook_loads_no_web_framework():
    """The worker renders a webhook's body from the public schema, not from the HTTP layer."""
    assert loaded_by("face3d.shared.webhooks") & {"flask", "werkzeug"} == set()
