"""`face3d ingest` through the real stack: folder (a non-image in it is skipped), crash + resume, rerun, S3 prefix,
zip upload."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from face3d.client.http import Face3dClient
from face3d.client.ingest import Ingest, IngestReport
from tests.batches.conftest import FAST, ROOT, SOURCE_BUCKET
from tests.batches.stack import batch_job_count, wait_until

PHOTO_COUNT = 26
INGEST_TIMEOUT_S = 120


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ingest(api_url: str, source: str, output: Path) -> IngestReport:
    return Ingest(source, output, lambda: Face3dClient(api_url), FAST, concurrency=4, progress=False,
                  poll_s=0.3).run(timeout_s=INGEST_TIMEOUT_S)


def ingest_process(api_url: str, source: Path, output: Path, env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "-c", "import sys; from face3d.shared.cli import main; sys.exit(main())", "ingest",
               str(source), "-o", str(output), "--server", api_url, "--no-video", "--texture-size", "256",
               "--no-progress"]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def folder_run(api_url, stack_env, faces_dir, tmp_path_factory):
    """Ingest ../shared/faces in a subprocess, SIGKILL it after its first result lines, then resume to the end."""
    output = tmp_path_factory.mktemp("ingest") / "faces.jsonl"
    process = ingest_process(api_url, faces_dir, output, stack_env)
    try:
        wait_until(lambda: output.exists() and output.read_text().count("\n") >= 1 or process.poll() is not None,
                   INGEST_TIMEOUT_S, "a first result line")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    lines_at_kill = output.read_text().count("\n")
    report = ingest(api_url, str(faces_dir), output)
    assert report.skipped == ["SOURCES.md"]                     # not a photo by its bytes: never uploaded
    return output, lines_at_kill


def test_folder_ingest_one_line_per_file_with_faces_and_reasons(folder_run, sf):
    output, lines_at_kill = folder_run
    assert 1 <= lines_at_kill < PHOTO_COUNT, "the ingest was not interrupted midway"
    lines = read_lines(output)
    by_name = {line["name"]: line for line in lines}
    assert len(lines) == len(by_name) == PHOTO_COUNT              # every photo exactly once, SOURCES.md skipped
    for name, line in by_name.items():
        if name.startswith("f_"):
            assert (line["state"], line["error"]["code"]) == ("failed", "no_face_detected"), line
        else:
            assert line["state"] == "succeeded" and line["faces"] >= 1, line
            assert any(a["name"] == "face_0.glb" for a in line["artifacts"]), line
    assert by_name["c_group_t1_six.jpg"]["faces"] == 6
    assert by_name["a_frontal_obama.jpg"]["faces"] == 1
    job_ids = [line["job_id"] for line in lines]
    assert batch_job_count(sf, _batch_of(sf, job_ids[0])) == PHOTO_COUNT       # no item was created twice
    assert all(line["reused_from"] is None for line in lines)      # each photo ran the engine exactly once


def test_rerun_creates_no_job_and_writes_nothing(folder_run, api_url, sf, faces_dir):
    output, _ = folder_run
    before, text = batch_job_count(sf), output.read_text()
    ingest(api_url, str(faces_dir), output)
    assert batch_job_count(sf) == before
    assert output.read_text() == text


def test_artifact_links_of_results_download(folder_run):
    import requests

    line = next(line for line in read_lines(folder_run[0]) if line["name"] == "a_frontal_obama.jpg")
    url = next(a["url"] for a in line["artifacts"] if a["name"] == "face_0.glb")
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content[:4] == b"glTF"


def test_s3_prefix_ingest_reuses_earlier_results(folder_run, api_url, source_s3, faces_dir, tmp_path):
    photos = ["a_frontal_obama.jpg", "c_group_t1_six.jpg", "f_noface_grass.jpg"]
    for name in photos:
        source_s3.put_object(Bucket=SOURCE_BUCKET, Key=f"set1/{name}", Body=(faces_dir / name).read_bytes())
    source_s3.put_object(Bucket=SOURCE_BUCKET, Key="set1/notes/readme.txt", Body=b"not a photo")
    output = tmp_path / "s3.jsonl"
    ingest(api_url, f"s3://{SOURCE_BUCKET}/set1/", output)
    by_name = {line["name"]: line for line in read_lines(output)}
    assert set(by_name) == {*photos, "notes/readme.txt"}
    assert by_name["c_group_t1_six.jpg"]["state"] == "succeeded" and by_name["c_group_t1_six.jpg"]["faces"] == 6
    assert by_name["a_frontal_obama.jpg"]["reused_from"]            # same bytes + options: not computed again
    assert by_name["notes/readme.txt"]["error"]["code"] == "unsupported_media_type"
    assert by_name["f_noface_grass.jpg"]["error"]["code"] == "no_face_detected"


def test_zip_upload_streams_entries_into_a_batch(api_url, faces_dir, tmp_path, sf):
    archive = tmp_path / "photos.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(faces_dir / "g_grayscale_hopper.jpg", "x/hopper.jpg")
        out.write(faces_dir / "g_grayscale_hopper.jpg", "y/hopper.jpg")      # same name twice: both kept
        out.writestr("notes.txt", "not a photo")
        out.writestr("__MACOSX/._hopper.jpg", "resource fork")
    client = Face3dClient(api_url)
    batch = client.upload_archive(archive, {**FAST, "max_faces": 3}, name="zip test")
    assert batch["state"] == "expanding" and batch["source"] == "archive:photos.zip"    # a worker unpacks it
    done = wait_until(lambda: (b := client.get_batch(batch["id"]))["state"] == "completed" and b, 60, "the zip batch")
    assert done["total"] == 3 and done["counts"]["succeeded"] == 2 and done["counts"]["failed"] == 1
    assert done["progress"] == 1.0 and done["throughput_items_per_s"] > 0 and done["eta_s"] is None
    lines = client.batch_results(batch["id"])
    assert sorted(line["name"] for line in lines) == ["notes.txt", "x/hopper.jpg", "y/hopper.jpg"]


def _batch_of(sf, job_id: str) -> str:
    from face3d.shared.jobs import get_job

    return get_job(sf, job_id).batch_id
