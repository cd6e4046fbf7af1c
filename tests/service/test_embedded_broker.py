"""The embedded default: no external service. A private Valkey broker under data_dir, SQLite, local storage, and a
real worker process that attaches to the broker the test started."""
from __future__ import annotations

import redis

from face3d.shared.config import load_settings
from face3d.shared.db import make_engine, make_session_factory
from face3d.shared.migrations import upgrade
from face3d.shared.states import JobState
from face3d.shared.storage import make_storage
from face3d.shared.broker import embedded_broker, find_embedded_broker, start_embedded_broker
from face3d.shared.queue import JobQueue, broker_url_for
from tests.service.workers import FACES, describe, submit, wait_terminal, worker_process


def test_start_attach_stop(tmp_path):
    assert find_embedded_broker(tmp_path) is None
    with embedded_broker(tmp_path) as owner:
        assert owner.owned and redis.Redis.from_url(owner.url).ping()
        assert find_embedded_broker(tmp_path) == owner.url
        assert broker_url_for(load_settings({}, data_dir=tmp_path)) == owner.url
        with embedded_broker(tmp_path) as guest:          # a second process would attach, not start another
            assert guest.url == owner.url and not guest.owned
        assert redis.Redis.from_url(owner.url).ping()     # the guest leaving does not stop it
    assert owner.process.poll() is not None
    assert find_embedded_broker(tmp_path) is None


def test_queued_messages_survive_a_restart(tmp_path):
    url, stop = start_embedded_broker(tmp_path)
    redis.Redis.from_url(url).lpush("cpu", b"message")
    stop()
    url_again, stop_again = start_embedded_broker(tmp_path)
    try:
        assert redis.Redis.from_url(url_again).lrange("cpu", 0, -1) == [b"message"]
    finally:
        stop_again()


def test_one_job_through_the_embedded_broker(tmp_path):
    settings = load_settings({"FACE3D_DATA_DIR": str(tmp_path)})
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    sf = make_session_factory(engine)
    log = tmp_path / "worker.log"
    with embedded_broker(tmp_path), worker_process({"FACE3D_DATA_DIR": str(tmp_path)}, log):
        job_id = submit(sf, make_storage(settings), JobQueue.from_settings(settings), FACES / "g_grayscale_hopper.jpg",
                        {"video": False, "texture_size": 256})
        job = wait_terminal(sf, job_id, log)
    engine.dispose()
    assert job.state is JobState.SUCCEEDED, describe(job, log)
    assert (tmp_path / "storage" / "jobs" / job_id / "output" / "result.json").is_file()


def test_second_start_is_refused_while_one_runs(tmp_path):
    import pytest

    from face3d.shared.errors import ErrorCode, Face3dError

    url, stop = start_embedded_broker(tmp_path)
    try:
        with pytest.raises(Face3dError) as caught:
            start_embedded_broker(tmp_path)
        assert caught.value.code is ErrorCode.BROKER_UNAVAILABLE
    finally:
        stop()


def test_broker_dies_with_its_owner(tmp_path):
    import subprocess
    import sys
    import time

    from tests.service.workers import ROOT

    script = ("import sys, time; from face3d.shared.broker import start_embedded_broker; "
              "url, _ = start_embedded_broker(sys.argv[1]); print(url, flush=True); time.sleep(60)")
    owner = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                             text=True)
    url = owner.stdout.readline().strip()
    assert redis.Redis.from_url(url).ping()
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 10
    while find_embedded_broker(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert find_embedded_broker(tmp_path) is None


def test_killed_worker_process_job_runs_again(tmp_path):
    """acks_late + reject_on_worker_lost: SIGKILL of the pool process mid-job redelivers it; attempt 2 finishes."""
    import os
    import signal
    import time

    from face3d.shared import jobs
    from tests.service.workers import pool_children

    settings = load_settings({"FACE3D_DATA_DIR": str(tmp_path)})
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    sf = make_session_factory(engine)
    log = tmp_path / "worker.log"
    with embedded_broker(tmp_path), worker_process({"FACE3D_DATA_DIR": str(tmp_path)}, log, pool="prefork") as proc:
        job_id = submit(sf, make_storage(settings), JobQueue.from_settings(settings), FACES / "c_group_t1_six.jpg",
                        {"video": True, "frames": 30})
        deadline = time.monotonic() + 120
        while jobs.get_job(sf, job_id).state is JobState.QUEUED and time.monotonic() < deadline:
            time.sleep(0.02)
        assert jobs.get_job(sf, job_id).state is JobState.RUNNING, describe(jobs.get_job(sf, job_id), log)
        os.kill(pool_children(proc)[0], signal.SIGKILL)
        job = wait_terminal(sf, job_id, log)
    engine.dispose()
    assert (job.state, job.attempts) == (JobState.SUCCEEDED, 2), describe(job, log)
    assert "previous worker lost, running it again" in log.read_text(errors="replace")
