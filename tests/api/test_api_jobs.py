"""Submitting, following, cancelling, deleting and listing jobs through the API (real database, fake worker)."""
from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from face3d.shared import jobs, models
from face3d.shared.errors import ErrorCode, Face3dError, NotFound
from face3d.shared.storage import job_prefix
from tests.api.fakes import assert_problem, finish_job, post_photo


def _job_count(sf) -> int:
    with sf() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(models.Job))


def test_submit_stores_input_commits_and_dispatches(client, obama_bytes, queue, session_factory, storage):
    response = post_photo(client, obama_bytes, name="../../etc/obama photo.jpg",
                          options={"max_faces": 3, "video": False}, texture_size="512")
    assert response.status_code == 202
    job = response.get_json()
    assert response.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["state"] == "queued" and job["engine"] == "cpu"
    assert job["options"]["max_faces"] == 3 and job["options"]["video"] is False
    assert job["options"]["texture_size"] == 512
    assert queue.sent == [(job["id"], "cpu")]
    row = jobs.get_job(session_factory, job["id"])
    assert row.input_key.startswith(job_prefix(job["id"])) and "/" not in row.input_name
    assert storage.get_bytes(row.input_key) == obama_bytes
    assert client.get(f"/v1/jobs/{job['id']}").get_json()["id"] == job["id"]


def test_same_idempotency_key_and_body_returns_the_same_job(client, obama_bytes, queue, session_factory):
    headers = {"Idempotency-Key": "retry-1"}
    first = post_photo(client, obama_bytes, options={"max_faces": 2}, headers=headers)
    again = post_photo(client, obama_bytes, options={"max_faces": 2}, headers=headers)
    assert first.status_code == 202 and again.status_code == 202
    assert again.get_json()["id"] == first.get_json()["id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(queue.sent) == 1 and _job_count(session_factory) == 1


def test_same_idempotency_key_with_another_body_is_409(client, obama_bytes, grass_bytes, session_factory, storage):
    headers = {"Idempotency-Key": "retry-2"}
    assert post_photo(client, obama_bytes, headers=headers).status_code == 202
    assert_problem(post_photo(client, grass_bytes, headers=headers), 409, "conflict")
    assert_problem(post_photo(client, obama_bytes, options={"max_faces": 1}, headers=headers), 409, "conflict")
    assert _job_count(session_factory) == 1


def test_broker_down_fails_the_job_and_answers_503(client, obama_bytes, queue, session_factory):
    queue.fail_with = Face3dError("the job queue is unreachable", ErrorCode.BROKER_UNAVAILABLE)
    assert_problem(post_photo(client, obama_bytes), 503, "broker_unavailable")
    rows, _ = jobs.list_jobs(session_factory)
    assert [(j.state.value, j.error_code) for j in rows] == [("failed", "broker_unavailable")]


def test_cancel_queued_job_then_cancel_again_is_409(client, obama_bytes):
    job_id = post_photo(client, obama_bytes).get_json()["id"]
    response = client.post(f"/v1/jobs/{job_id}/cancel")
    assert response.status_code == 202
    assert response.get_json()["state"] == "canceled"
    assert response.get_json()["error"]["code"] == "canceled"
    assert_problem(client.post(f"/v1/jobs/{job_id}/cancel"), 409, "conflict")
    assert_problem(client.post("/v1/jobs/nope/cancel"), 404, "not_found")


def test_cancel_running_job_flags_it_for_the_worker(client, obama_bytes, session_factory):
    job_id = post_photo(client, obama_bytes).get_json()["id"]
    assert jobs.mark_running(session_factory, job_id, "w1")
    body = client.post(f"/v1/jobs/{job_id}/cancel").get_json()
    assert body["state"] == "running" and body["cancel_requested"] is True
    assert jobs.get_job(session_factory, job_id).cancel_requested
    assert jobs.mark_canceled(session_factory, job_id)      # what the worker does at its next stage
    assert client.get(f"/v1/jobs/{job_id}").get_json()["state"] == "canceled"


def test_delete_removes_row_and_files(client, obama_bytes, session_factory, storage):
    job_id = post_photo(client, obama_bytes).get_json()["id"]
    finish_job(session_factory, storage, job_id)
    input_key = jobs.get_job(session_factory, job_id).input_key
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    assert_problem(client.get(f"/v1/jobs/{job_id}"), 404, "not_found")
    for key in (input_key, f"{job_prefix(job_id)}output/face_0.obj"):
        with pytest.raises(NotFound):
            storage.get_bytes(key)


def test_delete_queued_cancels_it_and_running_is_409(client, obama_bytes, session_factory):
    queued = post_photo(client, obama_bytes).get_json()["id"]
    assert client.delete(f"/v1/jobs/{queued}").status_code == 204
    running = post_photo(client, obama_bytes).get_json()["id"]
    jobs.mark_running(session_factory, running, "w1")
    assert_problem(client.delete(f"/v1/jobs/{running}"), 409, "conflict")
    assert client.get(f"/v1/jobs/{running}").get_json()["state"] == "running"


def test_pagination_walks_every_job_newest_first(client, obama_bytes, session_factory):
    created = [post_photo(client, obama_bytes).get_json()["id"] for _ in range(5)]
    client.post(f"/v1/jobs/{created[0]}/cancel")
    seen, url, pages = [], "/v1/jobs?limit=2", 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        page = response.get_json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        link = response.headers.get("Link")
        assert (link is not None) == (page["next_cursor"] is not None)
        url = link.split(">")[0].lstrip("<").split("localhost", 1)[-1] if link else None
    assert pages == 3
    assert seen == list(reversed(created))
    canceled = client.get("/v1/jobs?state=canceled").get_json()["items"]
    assert [item["id"] for item in canceled] == [created[0]]


def test_list_rejects_bad_parameters(client):
    assert_problem(client.get("/v1/jobs?state=done"), 422, "validation_failed")
    assert_problem(client.get("/v1/jobs?limit=0"), 422, "validation_failed")
    assert_problem(client.get("/v1/jobs?limit=abc"), 422, "validation_failed")
    assert_problem(client.get("/v1/jobs?cursor=garbage!"), 400, "invalid_request")


def test_prefer_wait_returns_the_finished_job(client, obama_bytes, queue, session_factory, storage):
    def worker_soon(job_id: str) -> None:
        threading.Timer(0.3, finish_job, args=(session_factory, storage, job_id)).start()

    queue.on_send = worker_soon
    response = post_photo(client, obama_bytes, headers={"Prefer": "respond-async, wait=10"})
    assert response.status_code == 200
    assert response.headers["Preference-Applied"] == "wait=10"
    body = response.get_json()
    assert body["state"] == "succeeded" and body["faces"][0]["score"] == 0.97
    assert body["artifacts"][0]["url"].startswith("http://localhost/v1/jobs/")


def test_prefer_wait_gives_up_after_n_seconds(client, obama_bytes):
    start = time.monotonic()
    response = post_photo(client, obama_bytes, headers={"Prefer": "wait=1"})
    elapsed = time.monotonic() - start
    assert response.status_code == 202 and response.get_json()["state"] == "queued"
    assert 0.9 <= elapsed < 5
    job_id = response.get_json()["id"]
    start = time.monotonic()
    polled = client.get(f"/v1/jobs/{job_id}", headers={"Prefer": "wait=1"})
    assert polled.status_code == 200 and 0.9 <= time.monotonic() - start < 5
