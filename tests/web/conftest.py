"""Real headless Chromium (Debian's `chromium`, driven by Python Playwright) for the web page tests.

Missing Chromium or Playwright fails these tests when CI is set and skips them loudly otherwise.
Set FACE3D_CHROMIUM to use another Chromium binary.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest
import redis

from face3d.api.serve import worker_command
from tests.api.fakes import LiveServer
from tests.conftest import redis_url_with_offset, service_missing

# WebGL without a GPU: ANGLE on SwiftShader (software Vulkan). --no-sandbox because CI runs as root.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--use-angle=swiftshader",
                  "--enable-unsafe-swiftshader"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives the web page in real headless Chromium")


def chromium_path() -> str | None:
    return os.environ.get("FACE3D_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium_path()
    if not path:
        service_missing("Chromium (apt-get install chromium)", "no chromium on PATH")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        service_missing("Python Playwright (pip install -e '.[dev]')", exc)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@dataclass
class Tab:
    """A page plus everything it logged as an error (console errors and uncaught exceptions)."""

    page: Any
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def tab(browser) -> Iterator[Tab]:
    context = browser.new_context(viewport=DESKTOP, reduced_motion="reduce", accept_downloads=True)
    context.set_default_timeout(20_000)
    page = context.new_page()
    opened = Tab(page)
    page.on("console", lambda message: opened.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: opened.errors.append(f"uncaught: {error}"))
    yield opened
    context.close()


# ---------------------------------------------------------------- the real stack


@pytest.fixture(scope="package")
def stack_env(redis_url: str, tmp_path_factory) -> Iterator[dict[str, str]]:
    from face3d.shared.migrations import upgrade

    data = tmp_path_factory.mktemp("web-stack")
    broker_url = redis_url_with_offset(2)   # a db of our own: no other test's worker may take these jobs
    redis.Redis.from_url(broker_url).flushdb()
    env = {**os.environ, "FACE3D_DATA_DIR": str(data), "DATABASE_URL": f"sqlite:///{data / 'face3d.db'}",
           "BROKER_URL": broker_url, "STORAGE_BACKEND": "local", "AUTH_MODE": "off", "PYTHONUNBUFFERED": "1"}
    upgrade(env["DATABASE_URL"])
    yield env
    redis.Redis.from_url(broker_url).flushdb()


@pytest.fixture(scope="package")
def worker(stack_env, tmp_path_factory) -> Iterator[subprocess.Popen]:
    from tests.service.workers import worker_process

    log = tmp_path_factory.mktemp("web-worker") / "worker.log"
    command = worker_command(1)                     # the queues `face3d serve` runs
    queues = command[command.index("--queues") + 1]
    with worker_process(stack_env, log, pool="prefork", queues=queues, concurrency=1) as process:
        yield process


@pytest.fixture(scope="package")
def live_url(stack_env, worker) -> Iterator[str]:
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings

    with LiveServer(create_app(load_settings(env=stack_env))) as url:
        yield url
