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
