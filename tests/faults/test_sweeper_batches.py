"""The sweeper meets batches and webhooks: batch items are resent through the batch path and only as far as their
queue lacks messages; jobs the sweeper fails get their webhook queued. SQLite and PostgreSQL, clock passed in."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from face3d.shared import batches, db, jobs, models
from face3d.shared.config import load_settings
from face3d.shared.states import JobState
from tests.stubs import RecordingQueue
from face3d.worker.sweeper import sweep_once


@pytest.fixture
def settings(tmp_path):
    return load_settings({}, data_dir=tmp_path, heartbeat_interval_s=0.2, heartbeat_timeout_s=1.0,
                         queued_resend_after_s=60, job_max_attempts=2, job_time_limit_s=600)


def later(seconds: float):
    return db.utcnow() + timedelta(seconds=seconds)


def new_items(sf, count: int, engine: str = "cpu") -> list[str]:
    batch = batches.create_batch(sf, engine=engine, options={}, source="s3://bucket/prefix/")
    items = [batches.NewItem(name=f"{index:04d}.jpg", input_key=f"s3://bucket/prefix/{index:04d}.jpg")
             for index in range(count)]
    return batches.add_items(sf, batch, items)


def new_job(sf, webhook_url: str | None = None) -> str:
    job, _ = jobs.create_job(sf, engine="cpu", options={}, input_name="x.jpg", input_key="jobs/x/input/x.jpg",
                               input_size=1, input_sha256="0" * 64, webhook_url=webhook_url)
    return job.id


def test_batch_items_waiting_behind_their_batch_are_not_resent(session_factory, settings):
    ids = new_items(session_factory, 3)
    fake = RecordingQueue(depths={"batch": 3})                       # every item still has its message
    report = sweep_once(session_factory, settings, fake, now=later(61))
    assert (report.resent, fake.items, fake.job_ids) == ([], [], [])
    assert {jobs.get_job(session_factory, job_id).state for job_id in ids} == {JobState.QUEUED}


def test_batch_items_the_queue_lost_are_resent_through_the_batch_path(session_factory, settings):
    ids = new_items(session_factory, 3)
    fake = RecordingQueue(depths={"batch": 1})                       # the broker lost two messages
    report = sweep_once(session_factory, settings, fake, now=later(61))
    assert report.resent == ids[:2] and fake.items == [("cpu", ids[:2])] and fake.job_ids == []
    fake.depths["batch"] = 0                                     # drained: the last one was lost too
    assert sweep_once(session_factory, settings, fake, now=later(62)).resent == ids[2:]
    assert fake.item_ids == ids and fake.job_ids == []


def test_gpu_batch_items_count_against_the_gpu_queue(session_factory, settings):
    ids = new_items(session_factory, 2, engine="hrn")
    fake = RecordingQueue(depths={"gpu": 2, "batch": 0})
    assert sweep_once(session_factory, settings, fake, now=later(61)).resent == []
    fake.depths["gpu"] = 0
    assert sweep_once(session_factory, settings, fake, now=later(61)).resent == ids
    assert fake.items == [("hrn", ids)]


def test_single_jobs_are_resent_even_behind_a_big_stale_batch(session_factory, settings):
    new_items(session_factory, 120)                              # older than the job and more than one page
    job_id = new_job(session_factory)
    fake = RecordingQueue(depths={"batch": 120})
    report = sweep_once(session_factory, settings, fake, now=later(61))
    assert report.resent == [job_id] and fake.job_ids == [job_id] and fake.items == []


def test_a_lost_batch_item_is_requeued_through_the_batch_path(session_factory, settings):
    [item] = new_items(session_factory, 1)
    jobs.mark_running(session_factory, item, "dead-worker")
    fake = RecordingQueue(depths={"batch": 0})
    report = sweep_once(session_factory, settings, fake, now=later(2))
    assert report.requeued == [item] and fake.items == [("cpu", [item])] and fake.job_ids == []


def test_jobs_the_sweeper_fails_get_their_webhook(session_factory, settings):
    sf = session_factory
    overdue, lost, quiet = (new_job(sf, "https://example.com/hook"), new_job(sf, "https://example.com/hook"),
                            new_job(sf))
    jobs.mark_running(sf, overdue, "w")
    for job_id in (lost, quiet):                                 # attempts == max: the next loss is final
        jobs.mark_running(sf, job_id, "w")
        jobs.requeue(sf, job_id)
        jobs.mark_running(sf, job_id, "w")
    with sf.begin() as session:                                  # the overdue one started long ago
        session.execute(sa.update(models.Job).where(models.Job.id == overdue)
                        .values(started_at=later(-settings.job_time_limit_s - 10)))
    fake = RecordingQueue()
    report = sweep_once(sf, settings, fake, now=later(2))
    assert set(report.failed) == {overdue, lost, quiet}
    assert sorted(fake.announced) == sorted([overdue, lost])     # quiet has no webhook_url: nothing to send
    assert jobs.get_job(sf, overdue).error_code == "timeout"
    assert jobs.get_job(sf, lost).error_code == "worker_lost"


def test_job_queue_sends_items_to_the_batch_queue_and_webhooks_to_theirs(session_factory, settings, redis_url):
    import dataclasses

    import redis

    from face3d.shared.queue import BATCH_TASK_NAME, WEBHOOK_TASK_NAME, JobQueue

    settings = dataclasses.replace(settings, broker_url=redis_url)
    client = redis.Redis.from_url(redis_url)
    client.delete("cpu", "batch", "webhooks")
    ids = new_items(session_factory, 2)
    hooked = new_job(session_factory, "https://example.com/hook")
    jobs.mark_running(session_factory, hooked, "w")
    jobs.requeue(session_factory, hooked)
    jobs.mark_running(session_factory, hooked, "w")
    queue = JobQueue.from_settings(settings)
    report = sweep_once(session_factory, settings, queue, now=later(61))
    assert report.resent == ids and report.failed == [hooked]
    assert [task_and_args(raw) for raw in reversed(client.lrange("batch", 0, -1))] == [
        (BATCH_TASK_NAME, [job_id]) for job_id in ids]
    assert [task_and_args(raw) for raw in client.lrange("webhooks", 0, -1)] == [(WEBHOOK_TASK_NAME, [hooked])]
    assert client.llen("cpu") == 0
    assert sweep_once(session_factory, settings, queue, now=later(200)).resent == []   # both still queued there
    client.delete("cpu", "batch", "webhooks")


def task_and_args(raw: bytes) -> tuple[str, list]:
    message = json.loads(raw)
    return message["headers"]["task"], json.loads(base64.b64decode(message["body"]))[0]


def test_serve_worker_consumes_the_webhooks_queue():
    from face3d.api.serve import worker_command

    queues = worker_command(1)[worker_command(1).index("--queues") + 1].split(",")
    assert queues == ["cpu", "gpu", "webhooks", "batch"]
