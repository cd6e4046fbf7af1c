"""`face3d serve` (or `make run`) as a test's subprocess: on 127.0.0.1, a free port and a temporary data folder,
with its terminal output in a file. Every process it stops or kills is one it started (by pid)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import psutil
import pytest

from tests.infra.layering import ROOT

RUNNING = "face3d is running at "
SERVICE_ENV = ("DATABASE_URL", "BROKER_URL", "STORAGE_BACKEND", "STORAGE_DIR", "FACE3D_DATA_DIR", "AUTH_MODE",
               "FACE3D_ENV")


def serve_command(port: int, data_dir: Path) -> list[str]:
    return [sys.executable, "-c", "import sys; from face3d.shared.cli import main; sys.exit(main())", "serve",
            "--port", str(port), "--data-dir", str(data_dir)]


def clean_env(**extra: str) -> dict[str, str]:
    """The caller's environment without the service settings a developer's shell may hold."""
    env = {key: value for key, value in os.environ.items() if key not in SERVICE_ENV}
    return {**env, **extra}


class ServeProcess:
    def __init__(self, command: Sequence[str], output: Path, env: dict[str, str] | None = None,
                 cwd: Path = ROOT) -> None:
        self.command, self.output, self.env, self.cwd = list(command), output, env or clean_env(), cwd
        self.process: subprocess.Popen | None = None

    def start(self) -> "ServeProcess":
        with self.output.open("wb") as out:
            self.process = subprocess.Popen(self.command, env=self.env, cwd=self.cwd, stdout=out,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    @property
    def text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def wait_running(self, timeout: float = 120) -> str:
        """The URL of the banner's first line, once it is printed; fails with the output if it exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if RUNNING in self.text:
                return self.text.split(RUNNING, 1)[1].split()[0]
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}:\n{self.text[-3000:]}")
            time.sleep(0.2)
        pytest.fail(f"serve printed no running line within {timeout} s:\n{self.text[-3000:]}")

    def wait_exit(self, timeout: float = 60) -> int:
        return self.process.wait(timeout=timeout)

    def tree(self) -> list[psutil.Process]:
        """The process and everything below it, now (children that changed parent later are still listed)."""
        root = psutil.Process(self.process.pid)
        return [root, *root.children(recursive=True)]

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def kill_all(processes: Sequence[psutil.Process]) -> None:
    """Cleanup after a failed test: SIGKILL whichever of these (started by the test) still run."""
    for process in processes:
        try:
            if process.is_running():
                process.kill()
        except psutil.Error:
            pass
