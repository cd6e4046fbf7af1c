"""One import namespace over the top-level folders: pyproject maps api/ client/ shared/ worker/ to face3d.*, its
explicit package list matches the tree (a new subpackage cannot be left out of the wheel), every name in it is
under face3d (the wheel's only top-level name), and a package imported by its bare folder name refuses loudly."""
from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest

from tests.infra.layering import PACKAGES, ROOT

NAMESPACE = "face3d"


def setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def packages_in_the_tree() -> set[str]:
    found = set()
    for folder in PACKAGES:
        for init in (ROOT / folder).rglob("__init__.py"):
            found.add(".".join((NAMESPACE, *init.parent.relative_to(ROOT).parts)))
    return found


def test_package_dir_maps_each_top_level_folder_into_the_namespace():
    assert setuptools_config()["package-dir"] == {f"{NAMESPACE}.{folder}": folder for folder in PACKAGES}


def test_the_package_list_matches_the_tree():
    listed = set(setuptools_config()["packages"])
    assert listed - packages_in_the_tree() == set(), "listed in pyproject but not in the tree"
    assert packages_in_the_tree() - listed == set(), "add the new package to [tool.setuptools] packages"
    assert all(name.startswith(NAMESPACE + ".") for name in listed)       # top_level.txt: face3d alone


def test_every_folder_with_python_code_is_a_package():
    """A folder of modules without __init__.py would be silently missing from the wheel."""
    loose = sorted(str(path.parent.relative_to(ROOT)) for folder in PACKAGES
                   for path in (ROOT / folder).rglob("*.py") if not (path.parent / "__init__.py").exists())
    assert loose == []


def test_entry_points_and_the_script_name_face3d_modules():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    targets = [project["scripts"]["face3d"], *project["entry-points"]["face3d.commands"].values()]
    assert all(target.startswith(NAMESPACE + ".") for target in targets), targets


@pytest.mark.parametrize("folder", PACKAGES)
def test_a_bare_import_fails_loudly(folder):
    """With the repository root on sys.path, `import shared` would load a second copy of every module."""
    result = subprocess.run([sys.executable, "-c", f"import {folder}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0
    assert f"import this package as {NAMESPACE}.{folder}" in result.stderr


def test_the_namespace_import_works_from_anywhere(tmp_path):
    result = subprocess.run([sys.executable, "-c", "import face3d.shared.jobs, face3d.client.http; print('ok')"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "ok", result.stderr


def bare_imports() -> list[str]:
    """`import shared...` / `from api... import` anywhere in the code, tests, benchmarks and tools."""
    import ast

    found = []
    for folder in (*PACKAGES, "tests", "bench", "tools"):
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
                found += [f"{path.relative_to(ROOT)}:{node.lineno} {name}" for name in names
                          if name.split(".")[0] in PACKAGES]
    return found


def test_every_import_names_the_namespace():
    assert bare_imports() == []
