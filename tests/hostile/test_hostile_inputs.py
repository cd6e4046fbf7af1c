"""A hostile-input corpus (made in tmp) through the API and a real worker on the embedded default (SQLite, local
files, embedded broker): each input gets its documented 4xx problem at submit, or a job that ends with the right
code. Never a 500, never a stuck job, and the worker serves the next job afterwards."""
from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
import pytest
from PIL import Image

from face3d.shared import jobs, models
from tests.api.fakes import assert_problem, post_photo
from tests.faults.stack import WorkerProcess, wait_until

FACES = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces"
FACE = FACES / "a_frontal_darkskin_woman.jpg"
LIMIT = 3 * 1024 * 1024
FAST = {"video": False, "texture_size": 256}


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb_header(width: int = 30_000, height: int = 30_000) -> bytes:
    """A PNG that claims width x height RGB pixels; its tiny IDAT never gets read."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))


def cmyk_jpeg(photo: Path) -> bytes:
    out = io.BytesIO()
    Image.open(photo).convert("CMYK").save(out, "JPEG", quality=95)
    assert Image.open(io.BytesIO(out.getvalue())).mode == "CMYK"
    return out.getvalue()


def png16(photo: Path) -> bytes:
    """48-bit RGB PNG (16 bits per channel) of a real face photo."""
    pixels = cv2.imread(str(photo), cv2.IMREAD_COLOR).astype(np.uint16) * 257
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok and encoded.tobytes()[24] == 16          # IHDR bit depth
    return encoded.tobytes()


def tiny_gif() -> bytes:
    out = io.BytesIO()
    Image.new("P", (8, 8), 3).save(out, "GIF")
    return out.getvalue()


def zip_file() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("face.jpg", FACE.read_bytes())
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
SVG = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
HTML = b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>"

# name -> (file name, bytes, options, expected: ("http", status, code) or ("job", state, code-or-None))
REFUSED_AT_SUBMIT = {
    "empty": ("empty.jpg", lambda: b"", None, (415, "unsupported_media_type")),
    "svg": ("face.svg", lambda: SVG, None, (415, "unsupported_media_type")),
    "pdf": ("face.pdf", lambda: PDF, None, (415, "unsupported_media_type")),
    "html": ("index.html", lambda: HTML, None, (415, "unsupported_media_type")),
    "html_named_jpg": ("face.jpg", lambda: HTML, None, (415, "unsupported_media_type")),
    "zip": ("faces.zip", zip_file, None, (415, "unsupported_media_type")),
    "huge": ("huge.jpg", lambda: b"\xff\xd8\xff" + bytes(LIMIT + 1), None, (413, "payload_too_large")),
    "bad_json_options": ("face.jpg", FACE.read_bytes, "{not json", (422, "validation_failed")),
    "options_not_object": ("face.jpg", FACE.read_bytes, "[1, 2]", (422, "validation_failed")),
    "unknown_option": ("face.jpg", FACE.read_bytes, json.dumps({"shell": "rm -rf /"}), (422, "validation_failed")),
    "bad_option_value": ("face.jpg", FACE.read_bytes, json.dumps({"max_faces": -1}), (422, "validation_failed")),
    # Pixel limit from the header at submit: over Pillow's own bomb ceiling, and over MAX_PIXELS only.
    "png_30000x30000": ("bomb.png", png_bomb_header, None, (413, "image_too_large")),
    "png_5000x5000": ("big.png", lambda: png_bomb_header(5000, 5000), None, (413, "image_too_large")),
}
JOBS = {
    "truncated_jpeg": ("cut.jpg", lambda: FACE.read_bytes()[: FACE.stat().st_size // 2], ("failed", "invalid_image")),
    "gif_then_jpeg_polyglot": ("poly.gif", lambda: tiny_gif() + FACE.read_bytes(), ("failed", "no_face_detected")),
    "gif_magic_on_jpeg": ("poly.jpg", lambda: b"GIF89a" + FACE.read_bytes(), ("failed", "invalid_image")),
    "png_named_jpg": ("really-a-png.jpg", lambda: (FACES / "a_frontal_astronaut.png").read_bytes(),
                      ("succeeded", None)),
    "cmyk_jpeg": ("cmyk.jpg", lambda: cmyk_jpeg(FACE), ("succeeded", None)),
    "png_16_bit": ("deep.png", lambda: png16(FACE), ("succeeded", None)),
    "unicode_name": ("лицо 😀 \u202e.jpg", FACE.read_bytes, ("succeeded", None)),
    "overlong_name": ("../" * 50 + "a" * 400 + ".jpg", FACE.read_bytes, ("succeeded", None)),
}


@pytest.fixture(scope="module")
def hostile_stack(tmp_path_factory) -> Iterator:
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings
    from face3d.shared.db import make_engine, make_session_factory
    from face3d.shared.migrations import upgrade
    from face3d.shared.broker import embedded_broker

    folder = tmp_path_factory.mktemp("hostile")
    env = {"FACE3D_DATA_DIR": str(folder), "MAX_UPLOAD_BYTES": str(LIMIT), "MAX_PIXELS": "20000000"}
    for name in ("DATABASE_URL", "BROKER_URL", "STORAGE_BACKEND", "STORAGE_DIR"):
        env[name] = ""                              # the embedded defaults, whatever the caller's environment
    settings = load_settings(env)
    upgrade(settings.database_url)
    with embedded_broker(folder):
        worker = WorkerProcess(env, folder / "worker.log").start()
        app = create_app(settings)
        app.testing = True
        engine = make_engine(settings.database_url)
        try:
            yield app.test_client(), make_session_factory(engine), worker
        finally:
            worker.stop()
            engine.dispose()


@pytest.mark.parametrize("case", sorted(REFUSED_AT_SUBMIT))
def test_refused_at_submit_with_documented_problem(hostile_stack, case):
    client, sf, _ = hostile_stack
    name, make, options, (status, code) = REFUSED_AT_SUBMIT[case]
    form = {"options": options} if options is not None else {}
    jobs_before = _job_count(sf)
    assert_problem(post_photo(client, make(), name=name, **form), status, code)
    assert _job_count(sf) == jobs_before, "a refused submit must not leave a job behind"


def _job_count(sf) -> int:
    import sqlalchemy as sa

    with sf() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(models.Job))


def test_hostile_jobs_end_with_the_right_code_and_the_worker_carries_on(hostile_stack):
    client, sf, worker = hostile_stack
    submitted = {}
    for case, (name, make, _) in JOBS.items():
        response = post_photo(client, make(), name=name, options=FAST)
        assert response.status_code == 202, (case, response.get_data(as_text=True))
        submitted[case] = response.get_json()["id"]
    follower = post_photo(client, FACE.read_bytes(), name="after.jpg", options=FAST).get_json()["id"]

    def all_done() -> bool:
        return all(jobs.get_job(sf, job_id).is_terminal for job_id in [*submitted.values(), follower])

    wait_until(all_done, 120, f"every hostile job finishes; worker log:\n{worker.log()}", 0.2)
    outcome = {case: (jobs.get_job(sf, job_id).state.value, jobs.get_job(sf, job_id).error_code)
               for case, job_id in submitted.items()}
    assert outcome == {case: expected for case, (_, _, expected) in JOBS.items()}
    assert jobs.get_job(sf, follower).state.value == "succeeded"
    names = {case: jobs.get_job(sf, submitted[case]).input_name for case in ("unicode_name", "overlong_name")}
    assert all(len(name) <= 120 and "/" not in name and ".." not in name for name in names.values()), names
    assert worker.process.poll() is None


@pytest.mark.parametrize("filename", ["../" * 50 + "a" * 400 + ".jpg", "лицо 😀 \u202e.jpg", "...", "con.jpg",
                                      "x" * 5000])
def test_odd_file_names_are_stored_safely_on_every_database(session_factory, local_storage, tmp_path, filename):
    """input_name is a 255-character column: PostgreSQL would refuse a longer one (a 500) if it were not capped."""
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings
    from tests.stubs import RecordingQueue

    app = create_app(load_settings(env={}, data_dir=tmp_path), session_factory=session_factory,
                     storage=local_storage, queue=RecordingQueue())
    response = post_photo(app.test_client(), FACE.read_bytes(), name=filename)
    assert response.status_code == 202, response.get_data(as_text=True)
    job = jobs.get_job(session_factory, response.get_json()["id"])
    assert 0 < len(job.input_name) <= 120 and "/" not in job.input_name and not job.input_name.startswith(".")
    assert local_storage.get_bytes(job.input_key) == FACE.read_bytes()


def test_a_file_name_with_a_control_character_is_refused_at_the_edge(session_factory, local_storage, tmp_path):
    """Like every string of a request (api/edge.py): 422 before anything is stored."""
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings
    from tests.stubs import RecordingQueue

    app = create_app(load_settings(env={}, data_dir=tmp_path), session_factory=session_factory,
                     storage=local_storage, queue=RecordingQueue())
    response = post_photo(app.test_client(), FACE.read_bytes(), name="a\x00b.jpg")
    assert response.status_code == 422 and "control character" in response.get_json()["detail"]
