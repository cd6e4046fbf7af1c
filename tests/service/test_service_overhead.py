"""The per-photo shortcuts of the job service: one round trip per progress stage, artifacts linked (not copied)
into local storage, and an ingest client that reads the batch results O(n) times in all, not once per poll."""
from __future__ import annotations

import errno
import os

import pytest

from face3d.shared import jobs, models
from face3d.client.ingest import MIN_POLL_S, _enough_new, _poll_delay
from face3d.shared.storage import LocalStorage, output_key
from face3d.shared.storage import local as local_storage


def new_job(sf) -> models.Job:
    job, _ = jobs.create_job(sf, engine="cpu", options={}, input_name="a.jpg", input_key="k", input_size=1,
                               input_sha256="0" * 64)
    return job


def test_report_progress_records_stage_and_answers_cancel(session_factory):
    sf = session_factory
    job = new_job(sf)
    assert jobs.report_progress(sf, job.id, "detect", 0.2) is None          # not running yet
    jobs.mark_running(sf, job.id, "w")
    assert jobs.report_progress(sf, job.id, "detect", 0.4) is False
    stored = jobs.get_job(sf, job.id)
    assert (stored.stage, stored.progress) == ("detect", 0.4)
    jobs.cancel_job(sf, job.id)
    assert jobs.report_progress(sf, job.id, "mesh", 0.6) is True
    jobs.mark_canceled(sf, job.id)
    assert jobs.report_progress(sf, job.id, "texture", 0.8) is None
    assert jobs.get_job(sf, job.id).stage == "mesh"


def test_local_put_file_links_on_the_same_file_system(tmp_path):
    storage = LocalStorage(tmp_path / "storage")
    source = tmp_path / "face_0.glb"
    source.write_bytes(b"glTF" * 100)
    storage.put_file(output_key("job1", source.name), source)
    stored = tmp_path / "storage" / output_key("job1", source.name)
    assert os.stat(stored).st_ino == os.stat(source).st_ino
    source.unlink()                                   # the worker's scratch folder goes right after
    assert storage.get_bytes(output_key("job1", "face_0.glb")) == b"glTF" * 100
    assert sorted(p.name for p in stored.parent.iterdir()) == ["face_0.glb"]     # no staged leftovers


def test_local_put_file_copies_when_it_cannot_link(tmp_path, monkeypatch):
    def cross_device(_source, _target):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(local_storage.os, "link", cross_device)
    storage = LocalStorage(tmp_path / "storage")
    source = tmp_path / "vis.png"
    source.write_bytes(b"\x89PNG" + bytes(range(256)))
    storage.put_file(output_key("job2", "vis.png"), source)
    stored = tmp_path / "storage" / output_key("job2", "vis.png")
    assert stored.read_bytes() == source.read_bytes()
    assert os.stat(stored).st_ino != os.stat(source).st_ino


def test_local_put_file_of_a_missing_file_is_the_callers_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        LocalStorage(tmp_path / "storage").put_file(output_key("job3", "x.obj"), tmp_path / "missing.obj")


def test_results_are_read_in_geometric_steps():
    reads, written = 0, 0
    for finished in range(1, 1001):                   # one more item finished at each poll
        if _enough_new(finished - written, written, 1000):
            reads, written = reads + 1, finished
    assert written == 1000
    assert reads < 100                                # at every poll it would be 1000 reads


@pytest.mark.parametrize("eta_s, expected", [(None, 1.0), (30.0, 1.0), (0.4, 0.4), (0.0, MIN_POLL_S)])
def test_poll_delay_shortens_only_near_the_end(eta_s, expected):
    assert _poll_delay(1.0, eta_s) == pytest.approx(expected)
