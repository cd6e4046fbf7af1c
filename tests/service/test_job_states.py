"""Job verbs on SQLite and PostgreSQL: allowed and refused transitions, races, idempotency, cancel, pagination."""
from __future__ import annotations

import threading
import uuid
from datetime import UTC

import pytest

from face3d.shared import jobs
from face3d.shared.errors import Conflict, ErrorCode, Face3dError, NotFound
from face3d.shared.states import JobState


def new_job(sf, **overrides):
    fields = dict(engine="cpu", options={"video": False}, input_name="face.jpg", input_key="jobs/x/input/face.jpg",
                  input_size=123, input_sha256="ab" * 32)
    fields.update(overrides)
    job, created = jobs.create_job(sf, **fields)
    assert created
    return job


def state_of(sf, job_id):
    return jobs.get_job(sf, job_id).state


def running_job(sf):
    job = new_job(sf)
    assert jobs.mark_running(sf, job.id, "w1")
    return job


def test_create_job_is_queued_with_utc_times(session_factory):
    job = new_job(session_factory)
    stored = jobs.get_job(session_factory, job.id)
    assert stored.state is JobState.QUEUED
    assert stored.options == {"video": False}
    assert stored.attempts == 0 and stored.progress == 0.0 and stored.cancel_requested is False
    assert stored.created_at.tzinfo is UTC and stored.created_at == job.created_at
    assert stored.started_at is None and stored.finished_at is None


def test_happy_path_queued_running_succeeded(session_factory):
    sf = session_factory
    job = new_job(sf)
    assert jobs.mark_running(sf, job.id, "worker-1")
    assert jobs.report_progress(sf, job.id, "detect", 0.3) is False       # recorded; no cancel asked
    mid = jobs.get_job(sf, job.id)
    assert (mid.state, mid.stage, mid.progress, mid.attempts, mid.worker) == (JobState.RUNNING, "detect", 0.3, 1,
                                                                              "worker-1")
    result = {"faces": [{"index": 0}], "artifacts": [], "warnings": [], "timings_ms": {"total": 1.0}}
    assert jobs.mark_succeeded(sf, job.id, result)
    done = jobs.get_job(sf, job.id)
    assert done.state is JobState.SUCCEEDED and done.result == result and done.progress == 1.0
    assert done.finished_at >= done.started_at >= done.created_at


def test_mark_failed_from_queued_and_running(session_factory):
    sf = session_factory
    queued, running = new_job(sf), running_job(sf)
    assert jobs.mark_failed(sf, queued.id, ErrorCode.BROKER_UNAVAILABLE, "no broker")
    assert jobs.mark_failed(sf, running.id, ErrorCode.NO_FACE_DETECTED, "no face")
    failed = jobs.get_job(sf, running.id)
    assert failed.state is JobState.FAILED
    assert (failed.error_code, failed.error_message) == ("no_face_detected", "no face")


def test_queued_job_refuses_progress_and_success(session_factory):
    sf = session_factory
    job = new_job(sf)
    assert jobs.report_progress(sf, job.id, "detect", 0.5) is None        # not running: nothing recorded
    assert not jobs.mark_succeeded(sf, job.id, {})
    assert not jobs.requeue(sf, job.id)
    assert state_of(sf, job.id) is JobState.QUEUED


@pytest.mark.parametrize("finish", ["succeeded", "failed", "canceled"])
def test_terminal_jobs_never_move(session_factory, finish):
    sf = session_factory
    job = running_job(sf)
    {"succeeded": lambda: jobs.mark_succeeded(sf, job.id, {"faces": []}),
     "failed": lambda: jobs.mark_failed(sf, job.id, ErrorCode.INTERNAL, "boom"),
     "canceled": lambda: jobs.mark_canceled(sf, job.id)}[finish]()
    before = jobs.get_job(sf, job.id)
    assert before.state.value == finish
    assert not jobs.mark_running(sf, job.id, "w2")       # a redelivered message does nothing
    assert jobs.report_progress(sf, job.id, "x", 0.9) is None
    assert not jobs.mark_succeeded(sf, job.id, {"faces": [1]})
    assert not jobs.mark_failed(sf, job.id, ErrorCode.TIMEOUT, "late")
    assert not jobs.mark_canceled(sf, job.id)
    assert not jobs.requeue(sf, job.id)
    with pytest.raises(Conflict):
        jobs.cancel_job(sf, job.id)
    after = jobs.get_job(sf, job.id)
    assert (after.state, after.attempts, after.result, after.error_code, after.updated_at) == (
        before.state, before.attempts, before.result, before.error_code, before.updated_at)


def test_requeue_then_run_again_counts_attempts(session_factory):
    sf = session_factory
    job = running_job(sf)
    assert jobs.requeue(sf, job.id)
    assert state_of(sf, job.id) is JobState.QUEUED
    assert jobs.mark_running(sf, job.id, "w2")
    assert jobs.get_job(sf, job.id).attempts == 2


def test_concurrent_mark_running_exactly_one_wins(session_factory):
    sf = session_factory
    for _ in range(5):
        job = new_job(sf)
        barrier = threading.Barrier(2)
        outcomes: list[bool] = []

        def claim(name: str) -> None:
            barrier.wait()
            outcomes.append(jobs.mark_running(sf, job.id, name))

        threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(outcomes) == [False, True]
        assert jobs.get_job(sf, job.id).attempts == 1


def test_idempotency_key_same_request_returns_first_job(session_factory):
    sf = session_factory
    first = new_job(sf, idempotency_key="key-1", request_fingerprint="fp-a")
    again, created = jobs.create_job(sf, engine="cpu", options={}, input_name="other.jpg", input_key="k2",
                                       input_size=1, input_sha256="cd" * 32, idempotency_key="key-1",
                                       request_fingerprint="fp-a")
    assert not created and again.id == first.id and again.input_name == "face.jpg"


def test_idempotency_key_different_request_conflicts(session_factory):
    sf = session_factory
    first = new_job(sf, idempotency_key="key-2", request_fingerprint="fp-a")
    with pytest.raises(Conflict) as caught:
        new_job(sf, idempotency_key="key-2", request_fingerprint="fp-b")
    assert caught.value.details["job_id"] == first.id
    assert len(jobs.list_jobs(sf)[0]) == 1


def test_duplicate_job_id_conflicts(session_factory):
    job = new_job(session_factory)
    with pytest.raises(Conflict):
        new_job(session_factory, job_id=job.id)


def test_cancel_queued_job_is_immediate(session_factory):
    sf = session_factory
    job = new_job(sf)
    canceled = jobs.cancel_job(sf, job.id)
    assert canceled.state is JobState.CANCELED and canceled.error_code == "canceled"
    assert canceled.finished_at is not None
    assert not jobs.mark_running(sf, job.id, "w1")     # the message that arrives later does nothing


def test_cancel_running_job_sets_flag_then_worker_cancels(session_factory):
    sf = session_factory
    job = running_job(sf)
    assert not jobs.get_job(sf, job.id).cancel_requested
    assert jobs.report_progress(sf, job.id, "detect", 0.2) is False
    flagged = jobs.cancel_job(sf, job.id)
    assert flagged.state is JobState.RUNNING and flagged.cancel_requested
    assert jobs.get_job(sf, job.id).cancel_requested
    assert jobs.report_progress(sf, job.id, "detect", 0.4) is True      # what the worker reads at each stage
    assert jobs.mark_canceled(sf, job.id)
    assert state_of(sf, job.id) is JobState.CANCELED


def test_missing_job_raises_not_found(session_factory):
    missing = uuid.uuid4().hex
    for call in (jobs.get_job, jobs.cancel_job, jobs.delete_job):
        with pytest.raises(NotFound):
            call(session_factory, missing)
    assert not jobs.mark_running(session_factory, missing, "w")


def test_delete_only_finished_jobs(session_factory):
    sf = session_factory
    job = running_job(sf)
    with pytest.raises(Conflict):
        jobs.delete_job(sf, job.id)
    jobs.mark_failed(sf, job.id, ErrorCode.INTERNAL, "x")
    deleted = jobs.delete_job(sf, job.id)
    assert deleted.id == job.id and deleted.input_key == job.input_key
    with pytest.raises(NotFound):
        jobs.get_job(sf, job.id)


def test_pagination_newest_first_every_job_once(session_factory):
    sf = session_factory
    created = [new_job(sf).id for _ in range(7)]
    pages, cursor = [], None
    while True:
        page, cursor = jobs.list_jobs(sf, cursor=cursor, limit=3)
        pages.append([job.id for job in page])
        if cursor is None:
            break
    assert [len(page) for page in pages] == [3, 3, 1]
    assert [job_id for page in pages for job_id in page] == created[::-1]


def test_pagination_filters_by_state(session_factory):
    sf = session_factory
    created = [new_job(sf) for _ in range(7)]
    for job in created[::2]:
        jobs.mark_running(sf, job.id, "w")
    running_ids = [job.id for job in created[::2]][::-1]
    first, cursor = jobs.list_jobs(sf, state="running", limit=3)
    second, end = jobs.list_jobs(sf, state=JobState.RUNNING, cursor=cursor, limit=3)
    assert [j.id for j in first + second] == running_ids and end is None
    queued, _ = jobs.list_jobs(sf, state="queued")
    assert {j.id for j in queued} == {job.id for job in created[1::2]}


@pytest.mark.parametrize("cursor", ["not-a-cursor", "W10", "eyJhIjogMX0"])
def test_bad_cursor_is_invalid_request(session_factory, cursor):
    with pytest.raises(Face3dError) as caught:
        jobs.list_jobs(session_factory, cursor=cursor)
    assert caught.value.code is ErrorCode.INVALID_REQUEST


def test_bad_state_and_limit_are_invalid_request(session_factory):
    for kwargs in ({"state": "nope"}, {"limit": 0}, {"limit": 10_000}):
        with pytest.raises(Face3dError) as caught:
            jobs.list_jobs(session_factory, **kwargs)
        assert caught.value.code is ErrorCode.INVALID_REQUEST


def test_verbs_take_their_source_states_from_the_state_machine():
    from face3d.shared.states import sources_of

    assert sources_of(JobState.RUNNING) == {JobState.QUEUED}
    assert sources_of(JobState.SUCCEEDED) == {JobState.RUNNING}
    assert sources_of(JobState.FAILED) == sources_of(JobState.CANCELED) == {JobState.QUEUED, JobState.RUNNING}
    assert sources_of(JobState.QUEUED) == {JobState.RUNNING}
    with pytest.raises(ValueError):          # a verb may narrow the sources, never widen them
        jobs._sources(JobState.SUCCEEDED, only_from=[JobState.QUEUED])
    assert jobs._sources(JobState.FAILED, only_from=[JobState.RUNNING]) == [JobState.RUNNING]
