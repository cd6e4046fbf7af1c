"""The client commands against the API over real HTTP (a fake worker moves the jobs): the connection-refused
message, `submit --wait` (id at once, progress, warnings, -o), download folders, `face3d jobs list|cancel|delete|
retry` with POST /v1/jobs/{id}/retry, and `face3d ingest`'s exit codes, skipped files, Ctrl-C and empty files."""
from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from face3d.client.cli import download, ingest, jobs, status, submit
from face3d.shared import jobs as job_verbs
from face3d.shared.errors import ErrorCode
from face3d.shared.storage import input_key
from tests.api.fakes import FAKE_FACE, LiveServer, finish_job
from tests.conftest import free_port
from tests.infra.layering import ROOT

EXAMPLES = ROOT / "examples"
FILES = {"face_0.glb": b"glTF-fake", "result.json": b'{"faces": [{"index": 0}]}'}
WARNED_FACE = {**FAKE_FACE, "warnings": ["extreme_yaw"]}


def fake_worker(session_factory, storage, job_id: str) -> None:
    """A job whose photo is named bad* fails with no_face_detected; others report a stage (group.jpg long enough to
    be seen), then succeed with a warned face."""
    job = job_verbs.get_job(session_factory, job_id)
    job_verbs.mark_running(session_factory, job_id, "fake-worker")
    if job.input_name.startswith("bad"):
        job_verbs.mark_failed(session_factory, job_id, ErrorCode.NO_FACE_DETECTED, "no face found in this photo")
        return
    job_verbs.report_progress(session_factory, job_id, "detect", 0.3)
    time.sleep(1.5 if job.input_name == "group.jpg" else 0.05)   # group.jpg: longer than a progress poll
    finish_job(session_factory, storage, job_id, FILES, running=True, faces=[WARNED_FACE],
               warnings=["max_faces_reached"])


@pytest.fixture
def server(app, queue, session_factory, storage):
    queue.on_send = lambda job_id: threading.Thread(target=fake_worker, args=(session_factory, storage, job_id),
                                                    daemon=True).start()
    with LiveServer(app) as url:
        yield url


def run(command, *args: str, **kwargs):
    return CliRunner().invoke(command, [str(arg) for arg in args], **kwargs)


def test_connection_refused_names_the_server_and_the_fix():
    url = f"http://127.0.0.1:{free_port()}"
    for command, args in ((status, ["some-id"]), (submit, [EXAMPLES / "frontal.jpg"]), (jobs, ["list"])):
        result = run(command, *args, "--server", url)
        assert result.exit_code == 1, result.output
        assert result.output.strip() == (
            f"error: server_unreachable: cannot reach the face3d server at {url}: is it running? (start it with "
            "`make run`, or set --server / FACE3D_SERVER)"), result.output
    result = run(status, "x", env={"FACE3D_SERVER": url})
    assert f"cannot reach the face3d server at {url}" in result.output and "urllib3" not in result.output


def test_submit_wait_prints_the_id_at_once_then_progress_warnings_and_downloads(server, tmp_path):
    result = run(submit, EXAMPLES / "group.jpg", "--server", server, "--wait", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    first, *rest = result.output.splitlines()
    assert first.startswith("job ") and first.endswith(": queued")
    job_id = first.split()[1].rstrip(":")
    assert any("running: detect 30%" in line for line in rest), result.output
    assert "warnings: extreme_yaw" in result.output and "photo warnings: max_faces_reached" in result.output
    assert sorted(p.name for p in (tmp_path / "out" / "group").iterdir()) == sorted(FILES)
    shown = run(status, job_id, "--server", server)
    assert "face 0:" in shown.output and "warnings: extreme_yaw" in shown.output
    quiet = run(submit, EXAMPLES / "frontal.jpg", "--server", server, "--wait", "--quiet")
    assert quiet.exit_code == 0 and len(quiet.stdout.split()) == 1      # the id alone, for scripts


def test_download_writes_each_job_into_its_own_folder(server, tmp_path):
    ids = [run(submit, EXAMPLES / name, "--server", server, "--wait", "-q").stdout.strip()
           for name in ("frontal.jpg", "profile.png")]
    for job_id in ids:
        result = run(download, job_id, "-o", tmp_path / "out", "--server", server)
        assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(ids)   # nothing overwritten
    for job_id in ids:
        assert {p.name: p.read_bytes() for p in (tmp_path / "out" / job_id).iterdir()} == FILES


def test_retry_api_resubmits_the_stored_input_as_a_linked_job(client, queue, session_factory, storage, tmp_path):
    photo = (EXAMPLES / "frontal.jpg").read_bytes()
    form = {"image": (io.BytesIO(photo), "bad.jpg"), "options": '{"max_faces": 2, "video": false}'}
    failed = client.post("/v1/jobs", data=form, content_type="multipart/form-data").get_json()
    assert client.post(f"/v1/jobs/{failed['id']}/retry").status_code == 409        # still queued: not failed
    job_verbs.mark_running(session_factory, failed["id"], "w")
    job_verbs.mark_failed(session_factory, failed["id"], ErrorCode.ENGINE_ERROR, "out of memory")
    response = client.post(f"/v1/jobs/{failed['id']}/retry", headers={"Idempotency-Key": "retry-1"})
    assert response.status_code == 202 and response.headers["Location"] == f"/v1/jobs/{response.get_json()['id']}"
    new = response.get_json()
    assert new["id"] != failed["id"] and new["retry_of"] == failed["id"] and new["state"] == "queued"
    assert new["options"] == failed["options"] and new["engine"] == failed["engine"]
    assert queue.job_ids[-1] == new["id"]
    replay = client.post(f"/v1/jobs/{failed['id']}/retry", headers={"Idempotency-Key": "retry-1"})
    assert replay.get_json()["id"] == new["id"] and replay.headers["Idempotent-Replayed"] == "true"
    assert client.get(f"/v1/jobs/{failed['id']}").get_json()["state"] == "failed"    # the old job as it was
    assert client.delete(f"/v1/jobs/{failed['id']}").status_code == 204
    assert storage.get_bytes(input_key(new["id"], "bad.jpg")) == photo   # its own copy outlives the old job
    assert client.post("/v1/jobs/no-such-job/retry").status_code == 404


def test_jobs_commands_list_cancel_delete_retry(server, session_factory):
    failed = run(submit, EXAMPLES / "frontal.jpg", "--server", server, "--wait", "-q")
    assert failed.exit_code == 0
    listed = run(jobs, "list", "--server", server)
    assert listed.exit_code == 0 and failed.stdout.strip() in listed.output and "succeeded" in listed.output
    retried = run(jobs, "retry", failed.stdout.strip(), "--server", server)
    assert retried.exit_code == 1 and "only a failed job can be retried" in retried.output
    bad = _submit_named(server, "bad.jpg")
    retried = run(jobs, "retry", bad, "--server", server, "--wait")
    assert retried.exit_code == 1 and f"retry of job {bad}" in retried.output   # fails again: bad.jpg
    new_id = retried.output.splitlines()[0].split()[1].rstrip(":")
    assert job_verbs.get_job(session_factory, new_id).retry_of == bad
    assert run(jobs, "list", "--state", "failed", "--server", server).output.count("no_face_detected") == 2
    assert run(jobs, "cancel", bad, "--server", server).exit_code == 1               # finished: 409
    deleted = run(jobs, "delete", bad, "--server", server)
    assert deleted.exit_code == 0 and deleted.output.strip() == f"job {bad}: deleted"
    assert "not_found" in run(status, bad, "--server", server).output


def _submit_named(server: str, name: str) -> str:
    from face3d.client.http import Face3dClient

    client = Face3dClient(server)
    job = client.submit(_copy_as(name), {})
    return client.wait(job.id, timeout=10).id


def _copy_as(name: str) -> Path:
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="face3d-cli-"))
    (folder / name).write_bytes((EXAMPLES / "frontal.jpg").read_bytes())
    return folder / name


def test_ingest_skips_non_photos_and_exits_1_when_an_item_failed(server, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "good.jpg").write_bytes((EXAMPLES / "frontal.jpg").read_bytes())
    (folder / "README.md").write_text("# notes")
    result = run(ingest, folder, "--server", server, "-o", tmp_path / "ok.jsonl", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "1 succeeded" in result.output and "skipped 1 file(s) that are not photos: README.md" in result.output
    (folder / "bad.jpg").write_bytes((EXAMPLES / "frontal.jpg").read_bytes())
    result = run(ingest, folder, "--server", server, "-o", tmp_path / "mixed.jsonl", "--no-progress")
    assert result.exit_code == 1, result.output
    assert "1 failed, 1 succeeded" in result.output and "1 item(s) failed" in result.output
    assert "1 when any failed" in ingest.get_help(click.Context(ingest))      # --help says so


def test_ingest_leaves_no_files_when_the_server_is_unreachable(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes((EXAMPLES / "frontal.jpg").read_bytes())
    output = tmp_path / "out" / "results.jsonl"
    result = run(ingest, folder, "--server", f"http://127.0.0.1:{free_port()}", "-o", output, "--no-progress")
    assert result.exit_code == 1 and "server_unreachable" in result.output
    assert not output.exists() and not output.with_name("results.jsonl.state").exists()


def test_ingest_ctrl_c_says_what_runs_on_and_how_to_resume(server, tmp_path, monkeypatch):
    from face3d.client.ingest import Ingest

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Ingest, "_collect", interrupted)
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes((EXAMPLES / "frontal.jpg").read_bytes())
    output = tmp_path / "r.jsonl"
    result = run(ingest, folder, "--server", server, "-o", output, "--no-progress")
    assert result.exit_code == 130, result.output
    assert "interrupted: the server keeps working on batch" in result.output
    assert f"rerun `face3d ingest {folder} -o {output}` with the same options to resume" in result.output
