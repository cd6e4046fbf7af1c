"""What the browser tests share: pixel checks of the viewer, screenshots for the README, waits on the page."""
from __future__ import annotations

import io
import os
import struct
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "docs" / "screenshots"
JOB_TIMEOUT_MS = 60_000
BACKGROUND = np.array([0x1C, 0x22, 0x29])      # the viewer's clear colour (api/static/viewer.js)
MAX_SCREENSHOT_BYTES = 300_000


def canvas_pixels(png: bytes) -> tuple[float, float]:
    """(share of pixels that are not background, share that are skin-toned) in a screenshot of the viewer."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    foreground = np.abs(rgb - BACKGROUND).sum(axis=2) > 45
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    skin = foreground & (r > 70) & (r >= g) & (g >= b) & (r - b > 15)
    return float(foreground.mean()), float(skin.mean())


def assert_glb(data: bytes) -> None:
    magic, version, length = struct.unpack_from("<4sII", data)
    assert (magic, version, length) == (b"glTF", 2, len(data))


def small_png(png: bytes) -> bytes:
    """Screenshots quantized to 256 colours: the README images stay well under MAX_SCREENSHOT_BYTES."""
    out = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").quantize(256, dither=Image.Dither.NONE).save(out, "PNG", optimize=True)
    return out.getvalue()


def save_screenshot(page, name: str, tmp_path: Path, full_page: bool = False) -> Path:
    folder = SCREENSHOTS if os.environ.get("FACE3D_WRITE_SCREENSHOTS") else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(small_png(page.screenshot(full_page=full_page)))
    assert path.stat().st_size < MAX_SCREENSHOT_BYTES
    return path


def wait_for_face(page, artifact: str = "face_0.glb") -> None:
    page.wait_for_selector(f'#viewer-canvas[data-loaded="{artifact}"]', timeout=JOB_TIMEOUT_MS)
    page.wait_for_timeout(200)      # the frame after loading reaches the screen


def open_page(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("html[data-ready]", state="attached")     # app.js has run


def job_entry(page, name: str):
    return page.locator("li.job", has=page.locator(".job-name", has_text=name))
