"""The web page at / in real headless Chromium, on the real stack: the API over HTTP, a `face3d worker` process on
Redis, SQLite and local storage. A second test covers the API-key prompt and downloads that redirect to presigned
S3 URLs (moto server), with a stand-in worker.

FACE3D_WRITE_SCREENSHOTS=1 also saves docs/screenshots/desktop.png and phone.png (the README links them).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.fakes import LiveServer, finish_job
from tests.conftest import S3_BUCKET
from tests.stubs import RecordingQueue
from tests.web.conftest import PHONE
from tests.web.helpers import assert_glb, canvas_pixels, job_entry, open_page, save_screenshot, wait_for_face

pytestmark = pytest.mark.browser
JOB_TIMEOUT_MS = 60_000


def new_row(page, at: int):
    """The row ``at`` places from the top, fixed by its job id once the upload is done."""
    top = page.locator("li.job").nth(at).and_(page.locator("[data-job-id]"))
    top.wait_for(timeout=JOB_TIMEOUT_MS)
    return page.locator(f'li.job[data-job-id="{top.get_attribute("data-job-id")}"]')


def test_photos_in_3d_faces_out_in_the_browser(tab, live_url, faces_dir, tmp_path):
    page = tab.page
    open_page(page, live_url)
    with page.expect_file_chooser() as chooser:
        page.locator("#drop-zone").press("Enter")      # the drop zone opens the picker from the keyboard
    chooser.value.set_files([faces_dir / "a_frontal_obama.jpg", faces_dir / "f_noface_grass.jpg"])

    # New rows go on top of the history the server lists (other tests' jobs): the grass photo's, then Obama's.
    obama, no_face = (new_row(page, at) for at in (1, 0))
    obama.and_(page.locator('[data-state="succeeded"]')).wait_for(timeout=JOB_TIMEOUT_MS)
    no_face.and_(page.locator('[data-state="failed"]')).wait_for(timeout=JOB_TIMEOUT_MS)
    assert "No face found in this photo." in no_face.locator(".job-message").inner_text()

    wait_for_face(page)           # the first finished job opens by itself
    canvas = page.locator("#viewer-canvas")
    before = canvas.screenshot()
    foreground, skin = canvas_pixels(before)
    assert foreground > 0.08 and skin > 0.05, (foreground, skin)

    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    assert canvas.screenshot() != before           # dragging orbits the face

    tabs = page.get_by_role("tab")
    assert tabs.count() == 1 and tabs.first.get_attribute("aria-selected") == "true"
    page.wait_for_function("document.getElementById('turntable').readyState >= 1")
    assert page.evaluate("document.getElementById('vis-image').naturalWidth") > 0

    with page.expect_download() as download:
        page.locator('#face-downloads [data-artifact="face_0.glb"]').click()
    assert download.value.suggested_filename == "a_frontal_obama_face0.glb"
    assert_glb(Path(download.value.path()).read_bytes())
    with page.expect_download() as download:
        page.locator('#job-downloads [data-artifact="result.json"]').click()
    assert len(json.loads(Path(download.value.path()).read_text())["faces"]) == 1

    page.locator("#view-reset").click()           # back to the photo's pose after the drag
    page.evaluate("window.scrollTo(0, 0)")
    save_screenshot(page, "desktop.png", tmp_path)
    page.set_viewport_size(PHONE)
    obama.locator("button.job-name").click()       # opens the result and scrolls to it
    wait_for_face(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]   # no sideways scrolling
    save_screenshot(page, "phone.png", tmp_path)
    assert tab.errors == []


# ---------------------------------------------------------------- API keys and presigned redirects


def _box_glb() -> bytes:
    import trimesh

    box = trimesh.creation.box(extents=(0.12, 0.16, 0.08))
    box.visual.face_colors = [224, 172, 140, 255]       # skin-toned
    return trimesh.Scene(box).export(file_type="glb")


def _require_key(token: str):
    from flask import request

    from face3d.api.problems import problem_response
    from face3d.shared.errors import ErrorCode

    def check():       # the shape api/auth.py answers with; the page must not depend on more than this
        if request.path.startswith("/v1/") and request.headers.get("Authorization") != f"Bearer {token}":
            return problem_response(401, ErrorCode.UNAUTHORIZED, "missing or unknown API key")
        return None

    return check


def test_api_key_prompt_and_presigned_downloads(tab, s3_storage, tmp_path, obama_bytes_path):
    from face3d.api.app import create_app
    from face3d.shared import jobs
    from face3d.shared.config import load_settings
    from face3d.shared.db import make_engine, make_session_factory
    from face3d.shared.migrations import upgrade

    database = f"sqlite:///{tmp_path / 'face3d.db'}"
    upgrade(database)
    sessions = make_session_factory(make_engine(database))
    job, _ = jobs.create_job(sessions, engine="cpu", options={}, input_name="box.jpg", input_key="jobs/x/input/box.jpg",
                               input_size=1, input_sha256="0" * 64, idempotency_key=None, request_fingerprint="f")
    s3_storage.put_bytes(job.input_key, obama_bytes_path.read_bytes())        # every job keeps its photo
    finish_job(sessions, s3_storage, job.id, {"face_0.glb": _box_glb(), "result.json": b'{"faces": [{}]}'})
    queue = RecordingQueue()
    settings = load_settings({"FACE3D_DATA_DIR": str(tmp_path), "S3_BUCKET": S3_BUCKET})
    app = create_app(settings, session_factory=sessions, storage=s3_storage, queue=queue)
    app.before_request(_require_key("secret-key"))

    page = tab.page
    redirects: list[str] = []
    page.on("response", lambda response: redirects.append(response.url) if response.status == 302 else None)
    with LiveServer(app) as url:
        open_page(page, url)              # the job list needs the key: the page asks for it
        assert "needs an API key" in page.locator("#notice").inner_text()
        page.set_input_files("#file-input", obama_bytes_path)
        job_entry(page, "a_frontal_obama.jpg").and_(page.locator('[data-state="needs-key"]')).wait_for()
        assert "API key" in page.locator("#notice").inner_text()
        assert page.evaluate("document.activeElement.id") == "api-key"

        page.keyboard.type("secret-key")
        page.keyboard.press("Enter")
        job_entry(page, "a_frontal_obama.jpg").and_(page.locator('[data-state="queued"]')).wait_for()
        boxed = job_entry(page, "box.jpg")           # listed from the server once the key is there
        boxed.and_(page.locator('[data-state="succeeded"]')).wait_for()
        boxed.locator("button.job-name").click()
        wait_for_face(page)
        assert canvas_pixels(page.locator("#viewer-canvas").screenshot())[1] > 0.05
        with page.expect_download() as download:
            page.locator('#face-downloads [data-artifact="face_0.glb"]').click()
        assert_glb(Path(download.value.path()).read_bytes())
        assert page.evaluate("localStorage.getItem('face3d.apiKey')") == "secret-key"
        page.close()        # before the server goes: the queued job is still being polled

    assert len(queue.sent) == 1
    assert any(f"/v1/jobs/{job.id}/artifacts/face_0.glb" in hop for hop in redirects)     # went through S3
    assert [e for e in tab.errors if "status of 401" not in e] == []


@pytest.fixture
def obama_bytes_path(faces_dir) -> Path:
    return faces_dir / "a_frontal_obama.jpg"
