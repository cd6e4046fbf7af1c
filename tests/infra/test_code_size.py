"""The project guide's size rules for production code: modules under 400 lines, functions under 40 lines.

A function's length runs from its ``def`` line to its last line, docstring included; a module's is its line count.
KNOWN_* list today's exceptions; they may only shrink.
"""
from __future__ import annotations

import ast

from tests.infra.layering import ROOT, production_files

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 40

KNOWN_LONG_MODULES: set[str] = set()
KNOWN_LONG_FUNCTIONS: set[str] = set()


def _relative(path) -> str:
    return path.relative_to(ROOT).as_posix()


def long_modules() -> dict[str, int]:
    sizes = {_relative(path): len(path.read_text().splitlines()) for path in production_files().values()}
    return {name: lines for name, lines in sizes.items() if lines >= MAX_MODULE_LINES}


def long_functions() -> dict[str, int]:
    found = {}
    for path in production_files().values():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines >= MAX_FUNCTION_LINES:
                    found[f"{_relative(path)}:{node.name}"] = lines
    return found


def test_modules_are_under_400_lines():
    found = long_modules()
    assert set(found) - KNOWN_LONG_MODULES == set(), {k: v for k, v in found.items() if k not in KNOWN_LONG_MODULES}
    assert KNOWN_LONG_MODULES - set(found) == set(), "now short enough: remove from KNOWN_LONG_MODULES"


def test_functions_are_under_40_lines():
    found = long_functions()
    assert set(found) - KNOWN_LONG_FUNCTIONS == set(), {k: v for k, v in found.items()
                                                        if k not in KNOWN_LONG_FUNCTIONS}
    assert KNOWN_LONG_FUNCTIONS - set(found) == set(), "now short enough: remove from KNOWN_LONG_FUNCTIONS"


def test_the_measure_sees_the_code():
    assert len(production_files()) > 50
    assert max(len(p.read_text().splitlines()) for p in production_files().values()) > 100
