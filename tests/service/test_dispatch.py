"""Sending jobs: the message lands on the engine's queue; an unreachable broker answers broker_unavailable fast."""
from __future__ import annotations

import json
import time

import pytest
import redis

from shared.config import load_settings
from shared.errors import ErrorCode, Face3dError
from worker.celery_app import TASK_NAME, make_celery
from worker.dispatch import send_job


def test_send_job_routes_by_engine(redis_url, tmp_path):
    app = make_celery(load_settings({}, data_dir=tmp_path, broker_url=redis_url))
    client = redis.Redis.from_url(redis_url)
    client.delete("cpu", "gpu")
    send_job(app, "job-cpu", "cpu")
    send_job(app, "job-gpu", "hrn")
    assert client.llen("cpu") == 1 and client.llen("gpu") == 1
    message = json.loads(client.lpop("cpu"))
    assert message["headers"]["task"] == TASK_NAME and message["headers"]["argsrepr"] == "['job-cpu']"
    client.delete("cpu", "gpu")


def test_celery_config_is_safe_for_long_jobs(tmp_path):
    settings = load_settings({"JOB_TIME_LIMIT_S": "900"}, data_dir=tmp_path, broker_url="redis://127.0.0.1:1/0")
    conf = make_celery(settings).conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit == 900
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert conf.accept_content == ["json"] and {q.name for q in conf.task_queues} == {"cpu", "gpu", "batch"}
    assert conf.broker_transport_options["queue_order_strategy"] == "priority"    # cpu before batch


def test_unreachable_broker_is_broker_unavailable_quickly(tmp_path):
    settings = load_settings({"BROKER_CONNECT_TIMEOUT_S": "1"}, data_dir=tmp_path, broker_url="redis://127.0.0.1:9/0")
    app = make_celery(settings)
    started = time.monotonic()
    with pytest.raises(Face3dError) as caught:
        send_job(app, "job-x", "cpu")
    assert caught.value.code is ErrorCode.BROKER_UNAVAILABLE
    assert time.monotonic() - started < 10


def test_embedded_default_without_running_broker_is_broker_unavailable(tmp_path):
    with pytest.raises(Face3dError) as caught:
        make_celery(load_settings({}, data_dir=tmp_path))
    assert caught.value.code is ErrorCode.BROKER_UNAVAILABLE
