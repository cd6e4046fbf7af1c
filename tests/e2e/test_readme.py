"""The README's commands, run as a new user would: in a fresh copy of the repository with no ../shared beside it,
against the server the README's own `make run` starts, each block checked for exit status 0. README drift fails.

The convention (also in the README's Development section): every ```bash block has a marker on the line above,
`<!-- readme-test: serve -->` (the block with `make run`: started in the background, its other make lines
checked with `make -n`), `<!-- readme-test: run -->` (run as written, one `bash -e` script per block) or
`<!-- readme-test: skip: <reason> -->`. The only rewrite: 127.0.0.1:8000 becomes the test server's free port (and
make is told the test's .venv is installed, so it never reinstalls into it from the copy).
"""
from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from tests.conftest import free_port
from tests.infra.layering import ROOT
from tests.serving import ServeProcess, clean_env, kill_all

SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)\s*$")
MARKER = re.compile(r"^<!-- readme-test: (serve|run|skip: .+) -->$")
DEFAULT_ADDRESS = "127.0.0.1:8000"
MAKE_INSTALLED = "make -o .venv/.installed"          # the copy shares the test's .venv: never reinstall into it
BLOCK_TIMEOUT_S = 300


@dataclass
class Block:
    line: int
    kind: str           # serve | run | skip: <reason>
    text: str


def readme_blocks(readme: str) -> list[Block]:
    lines = readme.splitlines()
    blocks = []
    for number, line in enumerate(lines):
        if not SHELL_BLOCK.match(line):
            continue
        marker = MARKER.match(lines[number - 1].strip()) if number else None
        assert marker, f"README.md:{number + 1}: a shell block without a readme-test marker on the line above"
        end = next(index for index in range(number + 1, len(lines)) if lines[index].startswith("```"))
        blocks.append(Block(number + 1, marker.group(1), "\n".join(lines[number + 1:end]) + "\n"))
    return blocks


LOCAL_ONLY = (".git", ".venv*", "__pycache__", "*.egg-info", "data", "out", "build", ".pytest_cache", "models",
              ".benchmarks", ".hypothesis", "node_modules")


def fresh_copy(destination: Path) -> Path:
    """The repository's files as a clone has them (tracked, plus new ones not ignored; without git, the tree minus
    what only a working copy has), and the test's .venv."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True)
    if listed.returncode != 0:
        shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(*LOCAL_ONLY), symlinks=True)
        (destination / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        return destination
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)          # mtimes kept: make sees nothing to rebuild
    (destination / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return destination


def test_blocks_are_all_marked_and_the_quick_start_is_among_the_tested():
    blocks = readme_blocks((ROOT / "README.md").read_text())
    kinds = [block.kind for block in blocks]
    assert kinds.count("serve") == 1 and kinds.count("run") >= 4
    serve = next(block for block in blocks if block.kind == "serve")
    assert "make run" in serve.text and "make test" in serve.text       # the two commands
    assert all("../shared" not in block.text for block in blocks if block.kind != "skip")


def test_a_block_without_a_marker_fails():
    with pytest.raises(AssertionError, match="without a readme-test marker"):
        readme_blocks("text\n\n```bash\nmake run\n```\n")


def test_every_readme_block_runs_in_a_fresh_clone(tmp_path):
    blocks = readme_blocks((ROOT / "README.md").read_text())
    clone = fresh_copy(tmp_path / "face3d")
    assert not (clone.parent / "shared").exists() and (clone / "examples" / "frontal.jpg").is_file()
    port = free_port()
    env = clean_env(PORT=str(port), FACE3D_SERVER=f"http://127.0.0.1:{port}")
    env.pop("FACE3D_API_KEY", None)
    serve_block = next(block for block in blocks if block.kind == "serve")
    server = start_server(serve_block, clone, env, tmp_path / "make-run.txt")
    started: list[psutil.Process] = []
    try:
        started = server.tree()
        for command in make_lines(serve_block, "make run", keep=False):
            run_block(clone, env, command.replace("make", f"{MAKE_INSTALLED} -n", 1), serve_block.line)
        printed = server.text.split("try:", 1)[1].splitlines()[0].strip()
        assert "examples/frontal.jpg" in printed, server.text
        assert json.loads(run_block(clone, env, printed, serve_block.line))["state"] == "succeeded"
        for block in blocks:
            if block.kind == "run":
                run_block(clone, env, block.text.replace(DEFAULT_ADDRESS, f"127.0.0.1:{port}"), block.line)
        assert (clone / "out" / "group" / "result.json").is_file()          # what the quick start promises
    finally:
        stop_server(server, started)
    assert server.process.returncode == 0, server.text[-3000:]
    assert server.text.count("face3d is running at") == 1 and "stopping face3d" in server.text


def make_lines(block: Block, target: str, keep: bool) -> list[str]:
    lines = [line.strip() for line in block.text.splitlines() if line.strip() and not line.startswith("#")]
    return [line for line in lines if line.startswith(target) == keep]


def start_server(block: Block, clone: Path, env: dict[str, str], output: Path) -> ServeProcess:
    (command,) = make_lines(block, "make run", keep=True)
    server = ServeProcess(["bash", "-c", command.replace("make", MAKE_INSTALLED, 1)], output, env, cwd=clone)
    server.start().wait_running(timeout=180)
    return server


def run_block(clone: Path, env: dict[str, str], script: str, line: int) -> str:
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=clone, env=env,
                            capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    assert result.returncode == 0, (f"README.md:{line}: exit {result.returncode}\n{script}\n--- stdout\n"
                                    f"{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}")
    return result.stdout


def stop_server(server: ServeProcess, started: list[psutil.Process]) -> None:
    """SIGTERM to the face3d serve below `make run` (make does not pass signals on), then whatever it left."""
    supervisors = [p for p in started if "serve" in _cmdline(p) and p.pid != server.process.pid]
    for process in supervisors[:1]:
        process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=60)
    finally:
        kill_all(started)


def _cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []
