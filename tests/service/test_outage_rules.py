"""The rules behind "outages don't consume work", without a stack: what counts as an outage, how long a task waits,
which S3 source errors are the source's fault, and the sweeper's depth-aware resend and front lane."""
from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError, EndpointConnectionError
from kombu.exceptions import OperationalError as BrokerDown

from face3d.shared import db, jobs
from face3d.shared.config import load_settings
from face3d.shared.errors import ErrorCode, Face3dError, InputError, NoFaceError, StorageUnavailable
from face3d.worker.outages import Outlasted, Patience, is_outage
from tests.stubs import RecordingQueue


def db_down() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly"))


@pytest.mark.parametrize("error", [db_down(), StorageUnavailable("s3 down"), BrokerDown("redis down"),
                                   ConnectionRefusedError(), Face3dError("x", ErrorCode.BROKER_UNAVAILABLE)])
def test_unreachable_services_are_outages(error):
    assert is_outage(error)


@pytest.mark.parametrize("error", [InputError("bad photo"), NoFaceError("none"), ValueError("bug"),
                                   Face3dError("x", ErrorCode.ENGINE_ERROR), sa.exc.IntegrityError("x", {}, None),
                                   FileNotFoundError()])
def test_the_jobs_own_problems_are_not(error):
    assert not is_outage(error)


def test_patience_retries_an_outage_with_capped_backoff_then_gives_up():
    slept: list[float] = []
    calls = iter([db_down(), db_down(), db_down(), "done"])

    def flaky():
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert Patience(60, "job", sleep=slept.append).retry(flaky) == "done"
    assert slept == [0.25, 0.5, 1.0]
    with pytest.raises(Outlasted):
        Patience(0.1, "job", sleep=slept.append).retry(lambda: (_ for _ in ()).throw(db_down()))
    with pytest.raises(InputError):                   # not an outage: straight through, no waiting
        Patience(60, "job", sleep=pytest.fail).retry(lambda: (_ for _ in ()).throw(InputError("bad")))


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


@pytest.mark.parametrize("error, expected", [
    (client_error("NoSuchKey", 404), ErrorCode.NOT_FOUND),
    (client_error("AccessDenied", 403), ErrorCode.FETCH_FAILED),          # the source's fault: fail the item
    (client_error("SlowDown", 503), ErrorCode.STORAGE_UNAVAILABLE),       # an outage: wait it out
    (client_error("InternalError", 500), ErrorCode.STORAGE_UNAVAILABLE),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), ErrorCode.STORAGE_UNAVAILABLE),
])
def test_s3_source_errors(error, expected):
    from face3d.shared.storage.s3 import read_source

    class Client:
        def get_object(self, **_):
            raise error

    with pytest.raises(Face3dError) as raised:
        read_source(Client(), "s3://bucket/a.jpg")
    assert raised.value.code is expected


@pytest.fixture
def settings(tmp_path):
    return load_settings({}, data_dir=tmp_path, queued_resend_after_s=10, heartbeat_interval_s=1,
                         heartbeat_timeout_s=5, job_max_attempts=3)


def new_job(sf) -> str:
    job, _ = jobs.create_job(sf, engine="cpu", options={}, input_name="x.jpg", input_key="jobs/x/input/x.jpg",
                             input_size=1, input_sha256="0" * 64)
    return job.id


def test_stale_single_jobs_are_resent_only_as_far_as_their_queue_lacks_messages(session_factory, settings):
    from face3d.worker.sweeper import sweep_once

    ids = [new_job(session_factory) for _ in range(5)]
    later = db.utcnow() + timedelta(seconds=11)
    full = RecordingQueue(depths={"cpu": 5})            # a long backlog, every message still there
    assert sweep_once(session_factory, settings, full, now=later).resent == []
    short = RecordingQueue(depths={"cpu": 3})           # the broker lost two: the two oldest are resent
    assert sweep_once(session_factory, settings, short, now=later).resent == ids[:2]


def test_a_lost_workers_job_is_resent_into_the_front_lane(session_factory, settings):
    from face3d.worker.sweeper import sweep_once

    job_id = new_job(session_factory)
    jobs.mark_running(session_factory, job_id, "dead/1")
    queue = RecordingQueue()
    report = sweep_once(session_factory, settings, queue, now=db.utcnow() + timedelta(seconds=6))
    assert report.requeued == [job_id] and queue.front == [job_id]


def test_a_webhook_attempt_meeting_a_database_outage_is_postponed_not_given_up(monkeypatch, tmp_path):
    from celery.exceptions import Retry

    from face3d.worker import webhooks as task_module

    def down(*args, **kwargs):
        raise db_down()

    monkeypatch.setattr(task_module, "attempt_delivery", down)
    monkeypatch.setattr(task_module, "context_for", lambda app: type("Ctx", (), {
        "session_factory": None, "settings": load_settings({}, data_dir=tmp_path)})())
    with pytest.raises(Retry):
        task_module.deliver_webhook.run("job-x", attempt=2)


def test_just_after_a_database_outage_silence_is_not_taken_for_a_dead_worker(session_factory, settings):
    from face3d.worker.sweeper import sweep_once

    job_id = new_job(session_factory)
    jobs.mark_running(session_factory, job_id, "alive-but-cut-off/1")
    later = db.utcnow() + timedelta(seconds=6)
    queue = RecordingQueue()
    assert sweep_once(session_factory, settings, queue, now=later, trust_silence=False).requeued == []
    assert sweep_once(session_factory, settings, queue, now=later).requeued == [job_id]


def test_the_sweeper_loop_stops_trusting_silence_after_a_failed_sweep(monkeypatch, settings):
    import threading

    from face3d.worker import sweeper

    seen: list[bool] = []
    stop = threading.Event()

    def fake_sweep(sf, settings, queue, now=None, trust_silence=True):
        seen.append(trust_silence)
        if len(seen) == 1:
            raise db_down()
        if len(seen) == 3:
            stop.set()
        return sweeper.SweepReport()

    monkeypatch.setattr(sweeper, "sweep_once", fake_sweep)
    sweeper.run_sweeper(None, settings, RecordingQueue(), stop, interval_s=0.01)
    assert seen == [True, False, False]
