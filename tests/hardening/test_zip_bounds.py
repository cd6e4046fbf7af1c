"""Zip uploads are bounded: entry count, uncompressed total and per-entry ratio; overlapping central-directory
entries are refused; every entry's real size is counted while it is unpacked, whatever its header says. A refused
zip stores nothing and makes no batch."""
from __future__ import annotations

import io
import time

import sqlalchemy as sa

from tests.hardening.conftest import lying_zip, overlapping_zip, stored_keys, zip_bytes
from tests.api.fakes import assert_problem

MiB = 1024 * 1024


def post_zip(client, data: bytes, name: str = "photos.zip"):
    return client.post("/v1/batches", data={"archive": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def batch_count(session_factory) -> int:
    from face3d.shared.models import Batch

    with session_factory() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(Batch))


def test_a_small_zip_expanding_past_the_total_bound_is_refused_cheaply(api, session_factory, local_storage):
    client, _, _ = api(MAX_ARCHIVE_UNCOMPRESSED_BYTES=str(64 * MiB))
    bomb = zip_bytes({f"zeros{i}.png": bytes(20 * MiB) for i in range(4)})      # 80 MiB in about 80 KB
    assert len(bomb) < 200_000
    started = time.monotonic()
    body = assert_problem(post_zip(client, bomb), 413, "archive_too_large")
    assert time.monotonic() - started < 1.0                                   # the central directory only
    assert "83886080" in body["detail"]
    assert stored_keys(local_storage) == [] and batch_count(session_factory) == 0


def test_too_many_entries_are_refused(api, session_factory, local_storage):
    client, _, _ = api(MAX_ARCHIVE_ENTRIES="5")
    assert_problem(post_zip(client, zip_bytes({f"{i}.png": b"x" for i in range(6)})), 413, "archive_too_large")
    assert stored_keys(local_storage) == [] and batch_count(session_factory) == 0


def test_central_directory_entries_sharing_one_local_entry_are_refused(api, session_factory, local_storage):
    client, _, _ = api()
    data = overlapping_zip(bytes(MiB), copies=30)          # 30 "files" of 1 MiB from one 1 KB local entry
    assert len(data) < 10_000
    body = assert_problem(post_zip(client, data), 422, "archive_invalid")
    assert "overlaps" in body["detail"]
    assert stored_keys(local_storage) == [] and batch_count(session_factory) == 0


def test_a_lying_header_is_caught_by_the_real_size(api, session_factory, local_storage, faces_dir):
    from face3d.shared.jobs import get_job

    client, _, expand = api()
    photo = (faces_dir / "g_grayscale_hopper.jpg").read_bytes()
    bigger = lying_zip("small.jpg", photo + bytes(2 * MiB), declared=len(photo))      # says a photo, holds more
    response = post_zip(client, bigger)
    assert response.status_code == 201 and response.get_json()["state"] == "expanding"
    batch_id = response.get_json()["id"]
    assert expand(batch_id) == "expanded"
    lines = [line for line in client.get(f"/v1/batches/{batch_id}/results").get_data(as_text=True).splitlines()]
    assert len(lines) == 1 and '"archive_entry_refused"' in lines[0]
    job_id = __import__("json").loads(lines[0])["job_id"]
    assert get_job(session_factory, job_id).input_key == ""               # nothing of it was stored
    assert not [key for key in stored_keys(local_storage) if key.startswith("jobs/")]


def test_a_header_claiming_more_than_the_entry_holds_is_refused(make_settings, local_storage):
    import zipfile

    from face3d.shared.batch_sources import read_entry
    from face3d.shared.errors import Face3dError

    data = lying_zip("a.png", b"x" * 1000, declared=5000)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        try:
            read_entry(make_settings(), archive, archive.infolist()[0], budget=10 * MiB)
        except Face3dError as exc:
            assert exc.code.value == "archive_entry_refused"
        else:
            raise AssertionError("a zip entry shorter than its header was accepted")


def test_a_high_ratio_entry_fails_its_item_only(api, local_storage, faces_dir):
    client, _, expand = api(MAX_ARCHIVE_ENTRY_RATIO="50")
    photo = (faces_dir / "g_grayscale_hopper.jpg").read_bytes()
    response = post_zip(client, zip_bytes({"zeros.bmp": bytes(5 * MiB), "photo.jpg": photo}))
    batch_id = response.get_json()["id"]
    assert expand(batch_id) == "expanded"
    lines = {line["name"]: line for line in map(__import__("json").loads,
             client.get(f"/v1/batches/{batch_id}/results").get_data(as_text=True).splitlines())}
    assert lines["zeros.bmp"]["error"]["code"] == "archive_entry_refused"
    assert lines["photo.jpg"]["state"] == "queued"
    assert client.get(f"/v1/batches/{batch_id}").get_json()["total"] == 2


def test_the_real_total_is_bounded_while_unpacking(make_settings, local_storage):
    """Entries whose real bytes pass the total bound: the rest of the zip fails, none of it is stored."""
    import zipfile

    from face3d.shared.batch_sources import archive_items

    settings = make_settings(MAX_ARCHIVE_UNCOMPRESSED_BYTES=str(3 * MiB), MAX_ARCHIVE_ENTRY_RATIO="100000")
    data = zip_bytes({f"{i}.png": bytes(MiB) for i in range(5)})
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        results = list(archive_items(settings, local_storage, archive, unpacked=MiB))   # 1 MiB used before
    codes = [error.code.value if error else None for _, error in results]
    assert codes[:2] == ["unsupported_media_type"] * 2            # not images, but within the bound
    assert codes[2:] == ["archive_too_large"] * 3
