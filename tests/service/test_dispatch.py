"""Sending jobs: the message lands on the engine's queue; an unreachable broker answers broker_unavailable fast."""
from __future__ import annotations

import json
import time

import pytest
import redis

from face3d.shared.config import load_settings
from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.queue import TASK_NAME, JobQueue, make_celery


def test_send_job_routes_by_engine(redis_url, tmp_path):
    queue = JobQueue.from_settings(load_settings({}, data_dir=tmp_path, broker_url=redis_url))
    client = redis.Redis.from_url(redis_url)
    client.delete("cpu", "gpu")
    queue.send_job("job-cpu", "cpu")
    queue.send_job("job-gpu", "hrn")
    assert client.llen("cpu") == 1 and client.llen("gpu") == 1
    message = json.loads(client.lpop("cpu"))
    assert message["headers"]["task"] == TASK_NAME and message["headers"]["argsrepr"] == "['job-cpu']"
    client.delete("cpu", "gpu")


def test_each_queue_has_its_own_direct_exchange_and_routing_still_works(redis_url, tmp_path):
    from face3d.shared.queue import WEBHOOK_TASK_NAME

    queue = JobQueue.from_settings(load_settings({}, data_dir=tmp_path, broker_url=redis_url))
    app = queue.celery_app
    bindings = {q.name: (q.exchange.name, q.exchange.type, q.routing_key) for q in app.conf.task_queues}
    names = [lane for name in ("cpu", "gpu", "batch", "webhooks") for lane in (name, f"{name}.front")]
    assert bindings == {name: (name, "direct", name) for name in names}
    client = redis.Redis.from_url(redis_url)
    client.delete("cpu", "gpu", "batch", "webhooks")
    queue.send_job("job-gpu", "hrn")
    queue.send_items(["item-1"], "cpu")
    queue.retry_webhook("job-hook")
    landed = {name: [json.loads(raw) for raw in client.lrange(name, 0, -1)] for name in ("cpu", "gpu", "batch",
                                                                                        "webhooks")}
    assert {name: [m["headers"]["argsrepr"] for m in messages] for name, messages in landed.items()} == {
        "cpu": [], "gpu": ["['job-gpu']"], "batch": ["['item-1']"], "webhooks": ["['job-hook']"]}
    assert landed["webhooks"][0]["headers"]["task"] == WEBHOOK_TASK_NAME
    assert "gpu              exchange=gpu(direct) key=gpu" in app.amqp.queues.format()     # the worker banner
    client.delete("cpu", "gpu", "batch", "webhooks")


def test_a_job_taken_back_from_a_lost_worker_goes_to_the_front_lane_read_first(redis_url, tmp_path):
    from face3d.shared.queue import consumed_queues

    assert consumed_queues(["cpu", "webhooks", "batch"]) == [
        "cpu.front", "cpu", "webhooks.front", "webhooks", "batch.front", "batch"]
    queue = JobQueue.from_settings(load_settings({}, data_dir=tmp_path, broker_url=redis_url))
    client = redis.Redis.from_url(redis_url)
    client.delete("cpu", "cpu.front", "batch", "batch.front")
    queue.send_job("job-1", "cpu")
    queue.send_job("job-2", "cpu", front=True)
    queue.send_items(["item-1"], "cpu", front=True)
    assert (client.llen("cpu"), client.llen("cpu.front"), client.llen("batch.front")) == (1, 1, 1)
    assert queue.depth("cpu") == 2 and queue.depth("batch") == 1        # the lane counts as its queue
    client.delete("cpu", "cpu.front", "batch", "batch.front")


def test_batch_items_are_the_messages_send_task_makes(redis_url, tmp_path):
    """send_items builds its messages without send_task (3x faster): they must stay what send_task would send,
    with only the ids differing, or workers and monitoring tools would read them differently."""
    from face3d.shared.queue import BATCH_TASK_NAME

    queue = JobQueue.from_settings(load_settings({}, data_dir=tmp_path, broker_url=redis_url))
    client = redis.Redis.from_url(redis_url)
    client.delete("batch")
    queue.celery_app.send_task(BATCH_TASK_NAME, args=["item-1"], queue="batch", routing_key="batch")
    queue.send_items(["item-1", "item-2"], "cpu")
    reference, fast, second = [json.loads(raw) for raw in reversed(client.lrange("batch", 0, -1))]
    client.delete("batch")
    ids = {"id", "root_id", "origin"}
    assert {k: v for k, v in fast["headers"].items() if k not in ids} == \
        {k: v for k, v in reference["headers"].items() if k not in ids}
    assert fast["headers"]["root_id"] == fast["headers"]["id"] != second["headers"]["id"]
    assert second["headers"]["argsrepr"] == "['item-2']"
    assert fast["body"] == reference["body"] and fast["content-type"] == reference["content-type"]
    properties = {"correlation_id", "delivery_tag"}
    assert {k: v for k, v in fast["properties"].items() if k not in properties} == \
        {k: v for k, v in reference["properties"].items() if k not in properties}
    assert fast["properties"]["correlation_id"] == fast["headers"]["id"]


def test_celery_config_is_safe_for_long_jobs(tmp_path):
    settings = load_settings({"JOB_TIME_LIMIT_S": "900"}, data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0")
    conf = make_celery(settings).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit == 900
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.accept_content == ["json"]
    assert {q.name for q in conf.task_queues} >= {"cpu", "gpu", "batch", "webhooks"}
    assert conf.broker_transport_options["queue_order_strategy"] == "priority"    # cpu before batch


def test_unreachable_broker_is_broker_unavailable_quickly(tmp_path):
    settings = load_settings({"BROKER_CONNECT_TIMEOUT_S": "1"}, data_dir=tmp_path, broker_url="redis://127.0.0.1:9/0")
    queue = JobQueue.from_settings(settings)
    started = time.monotonic()
    with pytest.raises(Face3dError) as caught:
        queue.send_job("job-x", "cpu")
    assert caught.value.code is ErrorCode.BROKER_UNAVAILABLE
    assert time.monotonic() - started < 10


def test_embedded_default_without_running_broker_is_broker_unavailable(tmp_path):
    with pytest.raises(Face3dError) as caught:
        make_celery(load_settings({}, data_dir=tmp_path))
    assert caught.value.code is ErrorCode.BROKER_UNAVAILABLE
