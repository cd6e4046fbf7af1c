"""The page as a product, in real headless Chromium on the real stack (API over HTTP, a `face3d worker` on Redis,
SQLite, local storage): cancel, delete and retry; history from the server after a reload and in another browser
with the same key; one URL per job; face boxes selecting tabs; "Download all" as one zip of stem-named files; the
viewer opening at the photo's pose, reset, shape mode; honest progress; the phone layout.

FACE3D_WRITE_SCREENSHOTS=1 also saves docs/screenshots/{desktop,phone}-{group,profile}.png (the README links them).
"""
from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import pytest
import requests
import trimesh

from tests.api.fakes import LiveServer
from tests.web.conftest import PHONE
from tests.web.helpers import (
    JOB_TIMEOUT_MS, assert_glb, canvas_pixels, job_entry, open_page, save_screenshot, wait_for_face,
)

pytestmark = pytest.mark.browser
GROUP, PROFILE, FRONTAL, NO_FACE = "c_group_selfie.jpg", "b_yaw_left_face.jpg", "a_frontal_obama.jpg", \
    "f_noface_grass.jpg"


def upload(page, faces_dir: Path, *names: str, video: bool = False, max_faces: int | None = None) -> None:
    page.locator("#opt-video").set_checked(video)
    if max_faces:
        page.locator("#opt-max-faces").fill(str(max_faces))
    page.set_input_files("#file-input", [faces_dir / name for name in names])


def row(page, job_id: str):
    return page.locator(f'li.job[data-job-id="{job_id}"]')


def job_id_of(page, name: str, state: str = "succeeded") -> str:
    """The job of a photo uploaded once in this stack, once it reaches ``state``."""
    entry = job_entry(page, name).and_(page.locator(f'[data-state="{state}"]')).first
    entry.wait_for(timeout=JOB_TIMEOUT_MS)
    return entry.get_attribute("data-job-id")


def newest(page, state: str | None = None) -> str:
    """The job on top of the list (the last upload or retry), once the server knows it (and it is in ``state``)."""
    top = page.locator("li.job").first.and_(page.locator("[data-job-id]"))
    top.wait_for(timeout=JOB_TIMEOUT_MS)
    job_id = top.get_attribute("data-job-id")
    if state:
        wait_state(page, job_id, state)
    return job_id


def wait_state(page, job_id: str, state: str) -> None:
    row(page, job_id).and_(page.locator(f'[data-state="{state}"]')).wait_for(timeout=JOB_TIMEOUT_MS)


def open_job(page, url: str, job_id: str, artifact: str = "face_0.glb") -> None:
    open_page(page, f"{url}/#/jobs/{job_id}")
    page.wait_for_selector(f'#result[data-job-id="{job_id}"]')
    wait_for_face(page, artifact)


def api(url: str, path: str, key: str | None = None) -> requests.Response:
    return requests.get(f"{url}{path}", headers={"Authorization": f"Bearer {key}"} if key else {}, timeout=10)


def long_running_job(url: str, faces_dir: Path) -> str:
    """A job with a 360-frame turntable, submitted over the API and seen running: seconds of work on any machine."""
    with open(faces_dir / FRONTAL, "rb") as photo:
        answer = requests.post(f"{url}/v1/jobs", files={"image": photo}, timeout=10,
                               data={"options": json.dumps({"frames": 360, "face_videos": False})})
    answer.raise_for_status()
    job_id = answer.json()["id"]
    for _ in range(300):
        if api(url, f"/v1/jobs/{job_id}").json()["state"] == "running":
            return job_id
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never started")


@pytest.fixture(scope="module")
def done(browser, live_url, faces_dir) -> dict[str, str]:
    """A group photo and a profile finished by the worker (no video: quick): name -> job id."""
    context = browser.new_context()
    page = context.new_page()
    open_page(page, live_url)
    upload(page, faces_dir, GROUP, PROFILE, max_faces=4)
    ids = {name: job_id_of(page, name) for name in (GROUP, PROFILE)}
    context.close()
    return ids


# ---------------------------------------------------------------- managing jobs


def test_cancel_retry_delete_and_try_again(tab, live_url, faces_dir):
    page = tab.page
    open_page(page, live_url)
    busy = long_running_job(live_url, faces_dir)          # holds the one worker slot while the next upload queues
    upload(page, faces_dir, FRONTAL, video=True)
    queued_id = newest(page)
    assert queued_id != busy
    row(page, queued_id).locator(".action-cancel").click()
    wait_state(page, queued_id, "canceled")
    assert api(live_url, f"/v1/jobs/{queued_id}").json()["state"] == "canceled"

    upload(page, faces_dir, NO_FACE)
    failed = newest(page, "failed")
    row(page, failed).locator(".action-retry").click()
    page.locator("li.job").first.and_(page.locator(f'[data-job-id]:not([data-job-id="{failed}"])')).wait_for()
    retry_id = newest(page, "failed")
    assert retry_id != failed and api(live_url, f"/v1/jobs/{retry_id}").json()["retry_of"] == failed

    page.once("dialog", lambda dialog: dialog.accept())     # "Delete … and its files from the server?"
    row(page, failed).locator(".action-delete").click()
    row(page, failed).wait_for(state="detached")
    assert api(live_url, f"/v1/jobs/{failed}").status_code == 404

    failures = {"left": 1}                                    # the server is down for the first upload

    def flaky(route):
        if route.request.method == "POST" and failures["left"]:
            failures["left"] -= 1
            return route.abort()
        return route.continue_()

    page.route("**/v1/jobs", flaky)
    upload(page, faces_dir, NO_FACE)
    lost = page.locator('li.job[data-state="upload-failed"]')
    assert "could not be reached" in lost.locator(".job-message").inner_text()
    lost.locator(".action-upload").click()                    # the same file again, no picking
    newest(page, "failed")
    assert lost.count() == 0

    states = lambda: set(page.locator("li.job").evaluate_all("rows => rows.map((r) => r.dataset.state)"))  # noqa
    page.locator("#job-filter").select_option("failed")          # the list is dropped, then read again
    page.locator('li.job[data-state="failed"]').first.wait_for()
    assert states() == {"failed"}
    page.locator("#job-filter").select_option("")
    page.locator('li.job[data-state="succeeded"]').first.wait_for()
    page.locator('li.job[data-state="canceled"]').first.wait_for()
    assert {"failed", "canceled", "succeeded"} <= states()
    page.locator("#clear-finished").click()                  # from view only: the server keeps them
    assert not states() & {"failed", "canceled", "succeeded"}
    page.reload()
    page.wait_for_selector("html[data-ready]", state="attached")
    assert row(page, retry_id).count() == 0 and api(live_url, f"/v1/jobs/{retry_id}").status_code == 200
    with page.expect_response(lambda response: "/v1/jobs?" in response.url):
        page.locator("#jobs-unhide").click()
    row(page, retry_id).wait_for()
    assert tab.errors == [] or all("net::ERR_FAILED" in e for e in tab.errors), tab.errors


def test_a_file_over_the_limit_is_refused_before_it_is_sent(tab, live_url):
    page = tab.page
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    open_page(page, live_url)
    assert page.locator("#upload-limit").inner_text() == "up to 20 MB each"
    page.set_input_files("#file-input", {"name": "huge.jpg", "mimeType": "image/jpeg",
                                         "buffer": b"\xff\xd8" + bytes(27 * 1024 * 1024)})
    refused = job_entry(page, "huge.jpg").and_(page.locator('[data-state="upload-failed"]'))
    refused.wait_for()
    assert refused.locator(".job-message").inner_text() == "This file is 27 MB; the limit is 20 MB."
    assert refused.locator(".action-upload").count() == 0 and posts == []
    assert tab.errors == []


def test_history_survives_a_reload_and_shows_in_another_browser_with_the_same_key(browser, stack_env, worker,
                                                                                  faces_dir):
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings
    from face3d.shared.db import session_factory_for
    from face3d.shared.keys import create_key

    sessions = session_factory_for(stack_env["DATABASE_URL"])
    key_a, key_b = (create_key(sessions, name=name).token for name in ("web A", "web B"))
    app = create_app(load_settings(env={**stack_env, "AUTH_MODE": "on"}))
    with LiveServer(app) as url:
        first = browser.new_context()
        page = first.new_page()
        open_page(page, url)
        page.locator("#api-key").fill("not-a-key")
        page.locator("#api-key").press("Enter")
        page.locator("#notice", has_text="This key was refused").wait_for()
        page.locator("#api-key").fill(key_a)
        page.locator("#api-key").press("Enter")
        upload(page, faces_dir, FRONTAL)
        job_id = newest(page, "succeeded")
        page.reload()
        page.wait_for_selector("html[data-ready]", state="attached")
        row(page, job_id).wait_for()                                          # from the server, not the browser
        first.close()

        for key, expected in ((key_a, 1), (key_b, 0)):
            other = browser.new_context()
            other.add_init_script(f"localStorage.setItem('face3d.apiKey', {json.dumps(key)})")
            page = other.new_page()
            open_page(page, url)                                            # the first page is loaded
            assert row(page, job_id).count() == expected
            assert page.locator("#jobs-empty").is_visible() is (expected == 0)
            other.close()


def test_the_job_url_opens_that_result_and_face_boxes_select_tabs(tab, live_url, done, tmp_path):
    page = tab.page
    open_job(page, live_url, done[GROUP])
    assert GROUP in page.locator("#result-title").inner_text()
    assert row(page, done[GROUP]).get_attribute("aria-current") == "true"
    tabs = page.get_by_role("tab")
    assert tabs.first.inner_text().strip() == "Face 0"                        # 0-based, as vis.png and the files
    page.locator('.face-box[data-face="2"]').click()
    wait_for_face(page, "face_2.glb")
    assert page.locator("#face-tab-2").get_attribute("aria-selected") == "true"
    assert page.evaluate("document.activeElement.id") == "face-tab-2"
    assert page.locator('.face-box[data-face="2"]').get_attribute("aria-pressed") == "true"
    page.locator("#face-tab-2 .tab-thumb.drawn").wait_for()                # a thumbnail cut from the photo
    row(page, done[GROUP]).locator("img.thumb").wait_for()

    page.locator("#view-compare").click()
    page.evaluate("window.scrollTo(0, 0)")
    save_screenshot(page, "desktop-group.png", tmp_path)
    page.set_viewport_size(PHONE)
    page.locator('.face-box[data-face="1"]').click()
    wait_for_face(page, "face_1.glb")
    page.locator("#result").scroll_into_view_if_needed()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    save_screenshot(page, "phone-group.png", tmp_path)
    assert tab.errors == []


def test_download_all_is_one_zip_of_stem_named_files(tab, live_url, done, tmp_path):
    page = tab.page
    open_job(page, live_url, done[GROUP])
    with page.expect_download() as download:
        page.locator("#download-all").click()
    assert download.value.suggested_filename == "c_group_selfie_3d.zip"
    artifacts = api(live_url, f"/v1/jobs/{done[GROUP]}").json()["artifacts"]
    with zipfile.ZipFile(download.value.path()) as archive:
        assert sorted(archive.namelist()) == sorted(a["download_name"] for a in artifacts)
        assert all(name.startswith("c_group_selfie_") for name in archive.namelist())
        assert "c_group_selfie_face0.glb" in archive.namelist() and "c_group_selfie_vis.png" in archive.namelist()
        glb = archive.read("c_group_selfie_face1.glb")
    assert_glb(glb)
    mesh = trimesh.load(io.BytesIO(glb), file_type="glb", force="mesh")
    assert len(mesh.faces) > 1000
    with page.expect_download() as download:
        page.locator('#face-downloads [data-artifact="face_0.glb"]').click()
    assert download.value.suggested_filename == "c_group_selfie_face0.glb"
    assert tab.errors == []


def test_the_viewer_opens_at_the_photo_pose_resets_and_shows_the_bare_shape(tab, live_url, done, tmp_path):
    page = tab.page
    open_job(page, live_url, done[PROFILE])
    face = api(live_url, f"/v1/jobs/{done[PROFILE]}").json()["faces"][0]
    assert abs(face["yaw"]) > 30                                              # a profile
    camera = lambda: page.evaluate("window.face3dViewer()")                   # noqa: E731
    start = camera()
    assert abs(start["azimuthDeg"] + face["yaw"]) < 1 and abs(start["elevationDeg"] - face["pitch"]) < 1, start
    assert abs(face["roll"]) < 3 or start["rollDeg"] * face["roll"] < 0, start    # the head's tilt, seen from in front

    assert "not a measure of the 3D quality" in page.locator("#face-facts abbr").get_attribute("title")
    canvas = page.locator("#viewer-canvas")
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] / 2 + 150, box["y"] + box["height"] / 2 + 400, steps=10)
    page.mouse.up()
    dragged = camera()
    turned = abs(dragged["azimuthDeg"] - start["azimuthDeg"])
    assert 10 < turned < 60, dragged                                         # gentler than ~120° per 150 px
    assert abs(dragged["elevationDeg"]) <= 55.01                             # never under the chin
    page.locator("#view-reset").click()
    assert abs(camera()["azimuthDeg"] - start["azimuthDeg"]) < 0.5
    canvas.focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Home")
    assert abs(camera()["azimuthDeg"] - start["azimuthDeg"]) < 0.5
    page.locator("#view-pose").click()                                       # straight on
    assert abs(camera()["azimuthDeg"]) < 0.5 and abs(camera()["elevationDeg"]) < 0.5
    assert abs(camera()["rollDeg"]) < 0.5
    page.locator("#view-pose").click()

    page.wait_for_timeout(200)
    textured = canvas.screenshot()
    page.locator("#view-look").select_option("shape")
    page.wait_for_timeout(200)
    shaped = canvas.screenshot()
    assert shaped != textured
    assert canvas_pixels(shaped)[1] < canvas_pixels(textured)[1] / 3        # grey: the skin tones are gone
    assert canvas_pixels(shaped)[0] > 0.05                                   # but the face is still there
    page.locator("#view-look").select_option("texture")
    page.locator("#view-compare").click()
    page.evaluate("window.scrollTo(0, 0)")
    save_screenshot(page, "desktop-profile.png", tmp_path)
    assert tab.errors == []


# ---------------------------------------------------------------- progress and the phone

PROGRESS_LOG = """
window.__progress = [];
new MutationObserver((changes) => {
  for (const change of changes) {
    const li = change.target;
    if (li.dataset && li.dataset.jobId) window.__progress.push([li.dataset.jobId, Number(li.dataset.progress),
      li.dataset.state]);
  }
}).observe(document, { subtree: true, attributes: true, attributeFilter: ["data-progress", "data-state"] });
"""


def test_progress_never_goes_backwards_and_reaches_100_only_when_done(tab, live_url, faces_dir):
    page = tab.page
    page.add_init_script(PROGRESS_LOG)
    polls = {"n": 0}

    def jumpy(route):        # the server's answers, with progress thrown about while the job runs
        response = route.fetch()
        job = response.json()
        if job.get("state") == "running":
            polls["n"] += 1
            job["progress"] = [0.95, 0.2, 1.0, 0.5][polls["n"] % 4]
        route.fulfill(response=response, json=job)

    page.route("**/v1/jobs/*", lambda route: jumpy(route) if route.request.method == "GET" else route.continue_())
    open_page(page, live_url)
    # 20 faces, a turntable each: several seconds of running (the 6-face selfie now ends within one poll or two)
    upload(page, faces_dir, "c_group_crowd_fans.jpg", video=True)
    job_id = newest(page, "succeeded")
    log = [(progress, state) for jid, progress, state in page.evaluate("window.__progress") if jid == job_id]
    assert polls["n"] >= 2, "the job ended before the page saw it run"
    values = [progress for progress, _ in log]
    assert values == sorted(values), log
    assert all(progress < 1 for progress, state in log if state != "succeeded"), log
    assert log[-1] == (1.0, "succeeded")
    assert tab.errors == []


def test_on_a_phone_the_result_scrolls_into_view_and_the_viewer_lets_the_page_scroll(browser, live_url, faces_dir,
                                                                                     done, tmp_path):
    context = browser.new_context(viewport=PHONE, reduced_motion="reduce", has_touch=True, is_mobile=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    open_page(page, live_url)
    assert page.evaluate("window.scrollY") == 0
    upload(page, faces_dir, FRONTAL)
    newest(page, "succeeded")
    wait_for_face(page)
    top = "document.getElementById('result').getBoundingClientRect().top"
    for _ in range(50):                          # polled from here: wait_for_function's eval breaks the page's CSP
        if -1 <= page.evaluate(top) < PHONE["height"] / 2:
            break
        page.wait_for_timeout(100)
    assert -1 <= page.evaluate(top) < PHONE["height"] / 2, page.evaluate(top)
    canvas = page.locator("#viewer-canvas")
    touch = lambda: page.evaluate("getComputedStyle(document.getElementById('viewer-canvas')).touchAction")  # noqa
    assert touch() == "pan-y"                          # a vertical swipe over the face scrolls the page
    canvas.tap()
    assert touch() == "none"                           # tapped: one finger turns the face
    page.locator("#result-title").tap()
    assert touch() == "pan-y"

    open_job(page, live_url, done[PROFILE])
    page.locator("#view-compare").tap()
    page.locator("#result").scroll_into_view_if_needed()
    save_screenshot(page, "phone-profile.png", tmp_path)
    context.close()
    assert errors == []
