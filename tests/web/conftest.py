"""Real headless Chromium (Debian's `chromium`, driven by Python Playwright) for the web page tests.

Missing Chromium or Playwright fails these tests when CI is set and skips them loudly otherwise.
Set FACE3D_CHROMIUM to use another Chromium binary.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Any, Iterator

import pytest

from tests.conftest import service_missing

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
