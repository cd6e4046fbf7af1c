"""Submitting through a real Celery app on the test Redis: the message lands in the engine's queue."""
from __future__ import annotations

import base64
import json

import redis

from face3d.api.app import create_app
from face3d.shared import jobs
from tests.api.fakes import assert_problem, post_photo
from tests.conftest import free_port, redis_url_with_offset




def test_submit_puts_one_message_on_the_cpu_queue(settings, session_factory, local_storage, redis_url, obama_bytes):
    from face3d.shared.queue import JobQueue

    redis_url = redis_url_with_offset(1)
    broker = redis.Redis.from_url(redis_url)
    broker.delete("cpu")
    app = create_app(settings, session_factory=session_factory, storage=local_storage,
                     queue=JobQueue.from_settings(settings, broker_url=redis_url))
    job_id = post_photo(app.test_client(), obama_bytes).get_json()["id"]
    messages = [json.loads(raw) for raw in broker.lrange("cpu", 0, -1)]
    broker.delete("cpu")
    assert [m["headers"]["task"] for m in messages] == ["face3d.reconstruct_job"]
    args, _kwargs, _embed = json.loads(base64.b64decode(messages[0]["body"]))
    assert args == [job_id]


def test_unreachable_broker_fails_fast_with_503(settings, session_factory, local_storage, obama_bytes):
    from face3d.shared.queue import JobQueue

    dead = JobQueue.from_settings(settings, broker_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(settings, session_factory=session_factory, storage=local_storage, queue=dead)
    assert_problem(post_photo(app.test_client(), obama_bytes), 503, "broker_unavailable")
    rows, _ = jobs.list_jobs(session_factory)
    assert [j.state.value for j in rows] == ["failed"]


def test_a_gpu_engine_is_refused_at_submit_until_a_gpu_worker_announces_itself(settings, session_factory,
                                                                                local_storage, redis_url, obama_bytes):
    """`engine=hrn` with no GPU worker used to stay queued forever (and count against the active-job cap)."""
    import dataclasses
    import threading
    import time

    from face3d.shared.queue import ENGINE_SEEN_KEY, JobQueue
    from face3d.worker.heartbeat import announce_engines_while_running

    redis_url = redis_url_with_offset(1)
    broker = redis.Redis.from_url(redis_url)
    broker.delete(ENGINE_SEEN_KEY.format(engine="hrn"), "gpu")
    settings = dataclasses.replace(settings, gpu_worker_fresh_s=1.0)
    queue = JobQueue.from_settings(settings, broker_url=redis_url)
    client = create_app(settings, session_factory=session_factory, storage=local_storage, queue=queue).test_client()
    refused = post_photo(client, obama_bytes, options={"engine": "hrn"})
    assert "no worker for engine 'hrn'" in assert_problem(refused, 503, "engine_unavailable")["detail"]
    assert jobs.list_jobs(session_factory)[0] == []                       # nothing stored, nothing queued
    assert post_photo(client, obama_bytes).status_code == 202            # cpu needs no announcement
    stop = threading.Event()
    announcer = announce_engines_while_running(queue, settings, stop)
    try:
        deadline = time.monotonic() + 5
        while not broker.exists(ENGINE_SEEN_KEY.format(engine="hrn")) and time.monotonic() < deadline:
            time.sleep(0.05)
        accepted = post_photo(client, obama_bytes, options={"engine": "hrn"})
        assert accepted.status_code == 202, accepted.get_data(as_text=True)
    finally:
        stop.set()
        announcer.join(5)
    time.sleep(1.3)                                                       # the announcement expires
    assert_problem(post_photo(client, obama_bytes, options={"engine": "hrn"}), 503, "engine_unavailable")
    broker.delete(ENGINE_SEEN_KEY.format(engine="hrn"), "gpu", "cpu")
