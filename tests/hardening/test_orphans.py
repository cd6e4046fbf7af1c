"""No stored object without a row: an item upload whose insert fails leaves nothing behind, and the storage sweep
deletes what nothing references (after a grace period) plus stale staging files, and says what it removed."""
from __future__ import annotations

import io
import os
import time
import uuid
from datetime import timedelta

import sqlalchemy as sa

from tests.hardening.conftest import stored_keys


def orphan_count(session_factory, storage) -> int:
    """Objects under jobs/<id>/ whose job has no row."""
    from face3d.shared.models import Job

    with session_factory() as session:
        ids = set(session.scalars(sa.select(Job.id)))
    return sum(1 for key in stored_keys(storage) if key.startswith("jobs/") and key.split("/")[1] not in ids)


def upload(client, batch_id: str, data: bytes, name: str = "a.jpg"):
    return client.post(f"/v1/batches/{batch_id}/items", data={"image": (io.BytesIO(data), name), "name": name},
                       content_type="multipart/form-data")


def test_failed_item_inserts_leave_no_object(api, session_factory, local_storage, faces_dir, monkeypatch):
    from face3d.shared import batches

    client, _, _ = api()
    photo = (faces_dir / "g_grayscale_hopper.jpg").read_bytes()
    batch = client.post("/v1/batches", json={}).get_json()
    assert upload(client, batch["id"], photo, "ok.jpg").status_code == 201

    def broken_insert(*args, **kwargs):
        raise sa.exc.OperationalError("INSERT", {}, Exception("database went away"))

    with monkeypatch.context() as patch:
        patch.setattr(batches, "add_items", broken_insert)
        for attempt in range(3):
            assert upload(client, batch["id"], photo, f"fails{attempt}.jpg").status_code >= 400
    client.post(f"/v1/batches/{batch['id']}/cancel")
    assert upload(client, batch["id"], photo, "late.jpg").status_code == 409      # canceled batch
    assert orphan_count(session_factory, local_storage) == 0
    assert [key.split("/")[1] for key in stored_keys(local_storage)] == [
        __import__("json").loads(client.get(f"/v1/batches/{batch['id']}/results").get_data())["job_id"]]


def test_storage_sweep_removes_old_orphans_and_stale_staging_files(make_settings, session_factory, local_storage):
    from face3d.shared import batches
    from face3d.shared.batches import NewItem
    from face3d.shared.storage import input_key
    from face3d.worker.storage_sweep import sweep_storage

    settings = make_settings(ORPHAN_GRACE_S="600")
    batch = batches.create_batch(session_factory, engine="cpu", options={}, source="client")
    kept_job = uuid.uuid4().hex
    local_storage.put_bytes(input_key(kept_job, "a.jpg"), b"referenced")
    batches.add_items(session_factory, batch, [NewItem("a.jpg", input_key(kept_job, "a.jpg"), job_id=kept_job)])
    orphan, young = input_key(uuid.uuid4().hex, "x.jpg"), input_key(uuid.uuid4().hex, "y.jpg")
    for key in (orphan, young, "uploads/client/z.jpg", "batches/gone/manifest.json"):
        local_storage.put_bytes(key, b"bytes")
    stale_tmp = local_storage.root / "jobs" / kept_job / "input" / ".tmp-abc123"
    stale_tmp.write_bytes(b"half a file")
    hour_ago = time.time() - 3600
    for key in (input_key(kept_job, "a.jpg"), orphan, "uploads/client/z.jpg", "batches/gone/manifest.json"):
        os.utime(local_storage.root / key, (hour_ago, hour_ago))
    os.utime(stale_tmp, (hour_ago, hour_ago))

    report = sweep_storage(session_factory, settings, local_storage)
    assert sorted(report.removed) == sorted([orphan, "batches/gone/manifest.json"])
    assert report.tmp_removed == [f"jobs/{kept_job}/input/.tmp-abc123"]
    assert stored_keys(local_storage) == sorted([input_key(kept_job, "a.jpg"), young, "uploads/client/z.jpg"])
    assert "2 orphaned object(s), 1 staging file(s)" in str(report)


def test_storage_sweep_on_s3(make_settings, session_factory, s3_storage):
    from face3d.shared.db import utcnow
    from face3d.shared.storage import input_key
    from face3d.worker.storage_sweep import sweep_storage

    orphan = input_key(uuid.uuid4().hex, "x.jpg")
    s3_storage.put_bytes(orphan, b"bytes")
    s3_storage.put_bytes("uploads/keep.jpg", b"bytes")
    settings = make_settings(ORPHAN_GRACE_S="60")
    assert sweep_storage(session_factory, settings, s3_storage).removed == []         # within the grace period
    later = utcnow() + timedelta(minutes=5)
    assert sweep_storage(session_factory, settings, s3_storage, now=later).removed == [orphan]
    assert [key for key, _ in s3_storage.list_objects()] == ["uploads/keep.jpg"]


def test_a_full_disk_leaves_no_staging_file(local_storage, monkeypatch):
    import errno
    import tempfile

    import pytest

    from face3d.shared.errors import StorageUnavailable

    real = tempfile.NamedTemporaryFile

    class FullDisk:
        def __init__(self, *args, **kwargs):
            self.handle = real(*args, **kwargs)
            self.name = self.handle.name

        def __enter__(self):
            return self

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def __exit__(self, *exc):
            self.handle.close()

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", FullDisk)
    with pytest.raises(StorageUnavailable):
        local_storage.put_bytes("jobs/j/input/a.jpg", b"data")
    assert stored_keys(local_storage) == []


def test_a_failed_artifact_upload_leaves_no_partial_output(local_storage, tmp_path):
    import pytest

    from face3d.shared.errors import StorageUnavailable
    from face3d.shared.storage import LocalStorage
    from face3d.worker.tasks import _upload_all

    class FillsUp(LocalStorage):
        def put_file(self, key, path, content_type=None):
            if key.endswith("face_0.glb"):
                raise StorageUnavailable(f"cannot write {key}: No space left on device")
            super().put_file(key, path, content_type)

    storage = FillsUp(local_storage.root)
    files = []
    for name in ("face_0.obj", "face_0.mtl", "face_0.glb"):
        (tmp_path / name).write_bytes(b"data")
        files.append(tmp_path / name)
    with pytest.raises(StorageUnavailable):
        _upload_all(storage, "job1", files)
    assert stored_keys(storage) == []
