"""The import graph of the production packages, read from the source with ``ast`` (nothing is imported).

Module names drop the ``face3d.`` prefix, so ``face3d.shared.jobs`` is ``shared.jobs`` here, and the package of a
module is its first name (``shared``, ``api``, ``worker``, ``client``).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "api", "worker", "client")
NAMESPACE = "face3d"
JOBS_WRITER = "shared.jobs"          # the one module that issues UPDATE on the jobs table


@dataclass(frozen=True)
class Edge:
    source: str         # importing module, e.g. "api.jobs"
    target: str         # imported project module, e.g. "shared.jobs"
    line: int
    lazy: bool          # inside a function: runs when called, not when the module is imported
    typing_only: bool   # under ``if TYPE_CHECKING:``: never runs


@dataclass(frozen=True)
class ExternalImport:
    source: str
    name: str           # top-level distribution module, e.g. "sqlalchemy"
    line: int


def production_files() -> dict[str, Path]:
    """Module name -> file, for every .py file of the production packages."""
    files: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            files[".".join(parts)] = path
    return files


def strip_namespace(name: str) -> str:
    return name[len(NAMESPACE) + 1:] if name.startswith(NAMESPACE + ".") else name


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
    """(node, lazy, typing_only) for every import statement."""
    def walk(node: ast.AST, lazy: bool, typing_only: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child, lazy, typing_only
            inner_lazy = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for statement in child.body:
                    yield from walk(ast.Module(body=[statement], type_ignores=[]), inner_lazy, True)
                for statement in child.orelse:
                    yield from walk(ast.Module(body=[statement], type_ignores=[]), inner_lazy, typing_only)
                continue
            yield from walk(child, inner_lazy, typing_only)
    yield from walk(tree, False, False)


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _targets(module: str, node: ast.Import | ast.ImportFrom, is_package: bool,
             files: dict[str, Path]) -> Iterator[str]:
    """Project-relative names of what the statement imports: a submodule where one is named, else the module."""
    if isinstance(node, ast.Import):
        yield from (strip_namespace(alias.name) for alias in node.names)
        return
    base = strip_namespace(_absolute(module, node, is_package))
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        yield submodule if submodule in files else base


def read_graph() -> tuple[list[Edge], list[ExternalImport]]:
    files = production_files()
    edges: list[Edge] = []
    external: list[ExternalImport] = []
    for module, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        for node, lazy, typing_only in _import_nodes(tree):
            names = list(dict.fromkeys(_targets(module, node, is_package, files)))
            for target in names:
                if target in files:
                    edges.append(Edge(module, target, node.lineno, lazy, typing_only))
                elif target.split(".")[0] not in PACKAGES + (NAMESPACE,):
                    external.append(ExternalImport(module, target.split(".")[0], node.lineno))
    return edges, external


def package_of(module: str) -> str:
    return module.split(".")[0]


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), through every import that runs."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if not edge.typing_only and edge.source != edge.target:
            graph.setdefault(edge.source, set()).add(edge.target)
            graph.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


@dataclass(frozen=True)
class JobsWrite:
    module: str
    line: int
    what: str


def _names_the_jobs_table(node: ast.expr) -> bool:
    """``Job``, ``models.Job``, ``Job.__table__``: the ORM class of the jobs table, however it is reached."""
    if isinstance(node, ast.Attribute) and node.attr == "__table__":
        node = node.value
    return (isinstance(node, ast.Name) and node.id == "Job") or (isinstance(node, ast.Attribute) and node.attr == "Job")


def jobs_table_writes() -> list[JobsWrite]:
    """Every ``update(Job)`` / ``Job.__table__.update()`` call and every SQL string that updates ``jobs``."""
    import re

    sql = re.compile(r"\bupdate\s+\"?jobs\"?\b", re.IGNORECASE)
    found: list[JobsWrite] = []
    for module, path in production_files().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if name == "update" and node.args and _names_the_jobs_table(node.args[0]):
                    found.append(JobsWrite(module, node.lineno, "update(Job)"))
                elif name == "update" and isinstance(func, ast.Attribute) and _names_the_jobs_table(func.value):
                    found.append(JobsWrite(module, node.lineno, "Job.__table__.update()"))
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and sql.search(node.value):
                found.append(JobsWrite(module, node.lineno, "UPDATE jobs in SQL text"))
    return found
