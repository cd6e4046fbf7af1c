"""The sweeper's decisions and the heartbeat, on SQLite and PostgreSQL, with a clock passed in (no waiting)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from datetime import timedelta

import pytest

from face3d.shared import db, jobs
from face3d.shared.config import load_settings
from face3d.shared.states import JobState
from face3d.worker.heartbeat import Heartbeat, previous_owner_lost, worker_identity
from tests.stubs import RecordingQueue
from face3d.worker.sweeper import sweep_once

HOST = socket.gethostname()


@pytest.fixture
def settings(tmp_path):
    return load_settings({}, data_dir=tmp_path, heartbeat_interval_s=0.2, heartbeat_timeout_s=1.0,
                         queued_resend_after_s=60, job_max_attempts=2, job_time_limit_s=600)


def new_job(sf) -> str:
    job, _ = jobs.create_job(sf, engine="cpu", options={}, input_name="x.jpg", input_key="jobs/x/input/x.jpg",
                               input_size=1, input_sha256="0" * 64)
    return job.id


def later(seconds: float):
    return db.utcnow() + timedelta(seconds=seconds)


def test_fresh_jobs_are_left_alone(session_factory, settings):
    queued = new_job(session_factory)
    running = new_job(session_factory)
    jobs.mark_running(session_factory, running, "w")
    queue = RecordingQueue()
    report = sweep_once(session_factory, settings, queue)
    assert (report.resent, report.requeued, report.failed, queue.sent_ids) == ([], [], [], [])
    assert jobs.get_job(session_factory, queued).state is JobState.QUEUED


def test_old_queued_job_is_resent_once_per_period(session_factory, settings):
    job_id = new_job(session_factory)
    queue = RecordingQueue()
    assert sweep_once(session_factory, settings, queue, now=later(61)).resent == [job_id]
    assert sweep_once(session_factory, settings, queue, now=later(62)).resent == []     # resent a moment ago
    assert queue.sent_ids == [job_id]
    assert jobs.get_job(session_factory, job_id).state is JobState.QUEUED


def test_silent_running_job_is_requeued_and_resent_then_fails_worker_lost(session_factory, settings):
    sf = session_factory
    job_id = new_job(sf)
    jobs.mark_running(sf, job_id, "dead-1")
    jobs.touch_heartbeat(sf, job_id, "dead-1")
    queue = RecordingQueue()
    report = sweep_once(sf, settings, queue, now=later(2))
    assert (report.requeued, queue.sent_ids) == ([job_id], [job_id])
    job = jobs.get_job(sf, job_id)
    assert (job.state, job.worker, job.heartbeat_at) == (JobState.QUEUED, None, None)
    jobs.mark_running(sf, job_id, "dead-2")                         # attempt 2 of 2 dies too
    report = sweep_once(sf, settings, queue, now=later(2))
    lost = jobs.get_job(sf, job_id)
    assert report.failed == [job_id] and queue.sent_ids == [job_id]
    assert (lost.state, lost.error_code, lost.attempts) == (JobState.FAILED, "worker_lost", 2)


def test_beating_job_is_not_touched_and_overdue_job_times_out(session_factory, settings):
    sf = session_factory
    job_id = new_job(sf)
    jobs.mark_running(sf, job_id, "alive")
    with Heartbeat(sf, job_id, "alive", settings.heartbeat_interval_s):
        time.sleep(1.5)                                                 # longer than the heartbeat timeout
        assert sweep_once(sf, settings, RecordingQueue()).requeued == []
    report = sweep_once(sf, settings, RecordingQueue(), now=later(settings.job_time_limit_s + 5))
    job = jobs.get_job(sf, job_id)
    assert report.failed == [job_id] and (job.state, job.error_code) == (JobState.FAILED, "timeout")


def test_requeue_loses_a_race_with_a_heartbeat(session_factory, settings):
    sf = session_factory
    job_id = new_job(sf)
    jobs.mark_running(sf, job_id, "slow")
    stale = jobs.get_job(sf, job_id)
    jobs.touch_heartbeat(sf, job_id, "slow")                       # the worker beats after the sweeper read
    assert not jobs.requeue_lost(sf, stale)
    assert jobs.get_job(sf, job_id).state is JobState.RUNNING


def test_heartbeat_notices_the_job_was_taken(session_factory, settings):
    sf = session_factory
    job_id = new_job(sf)
    jobs.mark_running(sf, job_id, "w1")
    with Heartbeat(sf, job_id, "w1", settings.heartbeat_interval_s) as beat:
        first = jobs.get_job(sf, job_id).heartbeat_at
        assert first is not None and not beat.lost.is_set()
        jobs.requeue_lost(sf, jobs.get_job(sf, job_id))
        assert beat.lost.wait(2)


def test_previous_owner_lost_rules(session_factory, settings):
    sf = session_factory
    job_id = new_job(sf)
    jobs.mark_running(sf, job_id, "never-beat")
    assert previous_owner_lost(sf, jobs.get_job(sf, job_id), settings)          # no heartbeat ever

    jobs.requeue(sf, job_id)
    jobs.mark_running(sf, job_id, "alive")
    with Heartbeat(sf, job_id, "alive", settings.heartbeat_interval_s):
        assert not previous_owner_lost(sf, jobs.get_job(sf, job_id), settings)  # its next beat answers

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead_local = worker_identity(f"face3d-cpu@{HOST}", pid=gone.pid)
    jobs.requeue(sf, job_id)
    jobs.mark_running(sf, job_id, dead_local)
    jobs.touch_heartbeat(sf, job_id, dead_local)
    started = time.monotonic()
    assert previous_owner_lost(sf, jobs.get_job(sf, job_id), settings)          # dead pid on this host
    assert time.monotonic() - started < 0.5                                        # without waiting it out

    jobs.requeue(sf, job_id)
    silent = worker_identity("face3d-cpu@another-host", pid=os.getpid())
    jobs.mark_running(sf, job_id, silent)
    jobs.touch_heartbeat(sf, job_id, silent)
    assert previous_owner_lost(sf, jobs.get_job(sf, job_id), settings)          # silent for the timeout


def test_sweeper_command_once(tmp_path):
    from click.testing import CliRunner

    from face3d.shared.cli import main
    from face3d.shared.migrations import upgrade

    url = f"sqlite:///{tmp_path / 'f.db'}"
    upgrade(url)
    env = {"FACE3D_DATA_DIR": str(tmp_path), "DATABASE_URL": url, "BROKER_URL": "redis://127.0.0.1:1/0"}
    result = CliRunner().invoke(main, ["sweeper", "--once"], env=env)
    assert result.exit_code == 0, result.output
    assert "SweepReport(resent=[], requeued=[], failed=[]" in result.output


def test_liveness_settings_are_validated():
    from face3d.shared.config import ConfigError

    with pytest.raises(ConfigError, match="HEARTBEAT_TIMEOUT_S"):
        load_settings({"HEARTBEAT_INTERVAL_S": "10", "HEARTBEAT_TIMEOUT_S": "15"})
    with pytest.raises(ConfigError, match="IMAGE_URL_ALLOW_NETWORKS"):
        load_settings({"IMAGE_URL_ALLOW_NETWORKS": "10.1.0.0/16,intranet"})
    assert load_settings({"IMAGE_URL_ALLOW_PRIVATE": "1"}).image_url_allow_private is True
    assert load_settings({"IMAGE_URL_ALLOW_NETWORKS": "10.1.0.0/16, 192.168.5.0/24"}).image_url_allow_networks == (
        "10.1.0.0/16", "192.168.5.0/24")
