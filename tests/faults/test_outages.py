"""Outages don't consume work: a 15 s PostgreSQL outage and a 15 s S3 outage, each with a 20-job backlog, at the
default liveness settings. No job fails for an infrastructure reason, the queue is not drained while the outage
lasts, and every job is finished within 30 s of the recovery.

The shared PostgreSQL server is never stopped: the worker and the sweeper reach it through a TCP proxy in this test
process (tests/faults/stack.py TcpProxy), and the outage is the proxy cutting every connection and refusing new
ones. S3 is a moto server this module starts and stops. Jobs write result.json only (landmarks and pose, no
textures or video) so the backlog is quick."""
from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from face3d.shared import db, jobs
from face3d.shared.states import JobState
from tests.conftest import free_port
from tests.faults.stack import PrivateBroker, S3Server, SweeperThread, TcpProxy, WorkerProcess, wait_until
from tests.service.workers import FACES, submit

BUCKET = "face3d-outages"
PHOTO = FACES / "a_frontal_darkskin_woman.jpg"
QUICK = {"video": False, "outputs": ["json"]}
BACKLOG, OUTAGE_S, RECOVERY_BOUND_S = 20, 15, 30
INFRASTRUCTURE_CODES = {"storage_unavailable", "database_unavailable", "broker_unavailable", "internal",
                        "worker_lost", "timeout"}


@dataclass
class OutageStack:
    env: dict[str, str]
    settings: object
    sf: object                      # straight to PostgreSQL: the test's own view, never cut
    proxied_sf: object              # through the proxy, as the worker and the sweeper see the database
    storage: object
    queue: object
    pg_proxy: TcpProxy
    s3: S3Server
    folder: Path

    def new_worker(self, name: str) -> WorkerProcess:
        return WorkerProcess(self.env, self.folder / f"{name}.log").start()


@pytest.fixture(scope="module")
def outage_stack(postgres_url: str, tmp_path_factory) -> Iterator[OutageStack]:
    from sqlalchemy.engine import make_url

    from face3d.shared.config import load_settings
    from face3d.shared.db import make_engine, make_session_factory
    from face3d.shared.migrations import upgrade
    from face3d.shared.queue import JobQueue
    from face3d.shared.storage import make_s3_client, make_storage

    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in credentials.items():
        os.environ.setdefault(name, value)
    folder = tmp_path_factory.mktemp("outages")
    url = make_url(postgres_url)
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    proxied_url = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    broker, s3 = PrivateBroker(folder / "broker", free_port()), S3Server(free_port())
    broker.start()
    s3.start()
    make_s3_client(s3.endpoint, "us-east-1").create_bucket(Bucket=BUCKET)
    # The default liveness settings (heartbeat, resend delay, sweeper interval, outage patience): no overrides.
    env = {"FACE3D_DATA_DIR": str(folder), "DATABASE_URL": proxied_url, "BROKER_URL": broker.url,
           "STORAGE_BACKEND": "s3", "S3_ENDPOINT_URL": s3.endpoint, "S3_BUCKET": BUCKET,
           "S3_PREFIX": f"outages-{uuid.uuid4().hex[:6]}/", **credentials}
    upgrade(postgres_url)
    settings = load_settings(env)
    direct, through_proxy = make_engine(postgres_url), make_engine(proxied_url)
    try:
        yield OutageStack(env, settings, make_session_factory(direct), make_session_factory(through_proxy),
                          make_storage(settings), JobQueue.from_settings(settings), proxy, s3, folder)
    finally:
        direct.dispose()
        through_proxy.dispose()
        proxy.close()
        broker.kill()
        s3.stop()


def started_or_done(stack: OutageStack, job_ids: list[str]) -> int:
    return sum(jobs.get_job(stack.sf, job_id).state is not JobState.QUEUED for job_id in job_ids)


def ride_out(stack: OutageStack, name: str, cut, restore) -> None:
    """A 20-job backlog, an outage of OUTAGE_S once the first job runs, then every job must succeed in time."""
    worker = stack.new_worker(name)
    with SweeperThread(stack.proxied_sf, stack.settings, stack.queue, stack.settings.sweeper_interval_s):
        try:
            wait_until(lambda: "ready" in worker.log(), 90, f"worker starts; log:\n{worker.log()}")
            backlog = [submit(stack.sf, stack.storage, stack.queue, PHOTO, QUICK) for _ in range(BACKLOG)]
            wait_until(lambda: started_or_done(stack, backlog) >= 1, 90, f"a job starts; log:\n{worker.log()}", 0.05)
            cut()
            try:
                time.sleep(OUTAGE_S)
                waiting = stack.queue.depth("cpu")
                not_started = BACKLOG - started_or_done(stack, backlog)
            finally:
                restore()
            recovered_at = db.utcnow()
            wait_until(lambda: all(jobs.get_job(stack.sf, job_id).is_terminal for job_id in backlog),
                       RECOVERY_BOUND_S + 30, f"the backlog finishes; log:\n{worker.log()}", 0.2)
        finally:
            worker.stop()
    done = [jobs.get_job(stack.sf, job_id) for job_id in backlog]
    infrastructure = [(job.id, job.error_code, job.error_message) for job in done
                      if job.error_code in INFRASTRUCTURE_CODES]
    assert infrastructure == [], f"jobs failed for the outage: {infrastructure}\n{worker.log()}"
    assert [job.state for job in done] == [JobState.SUCCEEDED] * BACKLOG, [(j.state, j.error_code) for j in done]
    assert waiting >= not_started - 1, f"the outage drained the queue: {waiting} messages left of {not_started}"
    assert [job.attempts for job in done] == [1] * BACKLOG      # the job in flight was not taken for lost either
    last_s = max((job.finished_at - recovered_at).total_seconds() for job in done)
    assert last_s <= RECOVERY_BOUND_S, f"the last job finished {last_s:.1f} s after the recovery"
    print(f"{name}: {BACKLOG} jobs, {OUTAGE_S} s outage; {waiting} messages still queued at its end; "
          f"last job done {last_s:.1f} s after the recovery; attempts {sorted(job.attempts for job in done)}")


def test_a_database_outage_fails_nothing_and_drains_nothing(outage_stack):
    ride_out(outage_stack, "database-outage", outage_stack.pg_proxy.cut, outage_stack.pg_proxy.restore)


def test_a_storage_outage_fails_nothing_and_drains_nothing(outage_stack):
    ride_out(outage_stack, "storage-outage", outage_stack.s3.stop, outage_stack.s3.start)


SLOW = {"video": True, "frames": 24, "render_size": 256, "texture_size": 256}     # a few seconds of work
TEXTURED = {"video": False, "texture_size": 256}    # 60 of them outlast the loss detection (~12 s) here
KILL_BACKLOG = 60


def test_a_killed_workers_job_goes_to_the_front_not_behind_the_backlog(outage_stack):
    """kill -9 mid-job with 60 jobs queued behind: the sweeper takes the job back (HEARTBEAT_TIMEOUT_S) into its
    queue's front lane, so it runs next instead of after the whole backlog."""
    stack = outage_stack
    first, second = stack.new_worker("killed"), None
    with SweeperThread(stack.proxied_sf, stack.settings, stack.queue, stack.settings.sweeper_interval_s) as sweeper:
        try:
            wait_until(lambda: "ready" in first.log(), 90, f"worker starts; log:\n{first.log()}")
            victim = submit(stack.sf, stack.storage, stack.queue, PHOTO, SLOW)
            backlog = [submit(stack.sf, stack.storage, stack.queue, PHOTO, TEXTURED) for _ in range(KILL_BACKLOG)]
            wait_until(lambda: (jobs.get_job(stack.sf, victim).stage or "started") not in ("started", "decode"), 90,
                       f"the first job runs; log:\n{first.log()}", 0.02)
            first.kill()
            killed_at = time.monotonic()
            second = stack.new_worker("after-kill")
            wait_until(lambda: jobs.get_job(stack.sf, victim).is_terminal, 120,
                       f"the killed job finishes; log:\n{second.log()}", 0.1)
            recovered_s = time.monotonic() - killed_at
            wait_until(lambda: all(jobs.get_job(stack.sf, j).is_terminal for j in backlog), 180,
                       f"the backlog finishes; log:\n{second.log()}", 0.2)
        finally:
            first.kill()
            if second is not None:
                second.stop()
    job = jobs.get_job(stack.sf, victim)
    rest = [jobs.get_job(stack.sf, job_id) for job_id in backlog]
    assert (job.state, job.attempts) == (JobState.SUCCEEDED, 2) and victim in sweeper.touched("requeued")
    assert all(other.state is JobState.SUCCEEDED for other in rest)
    behind = sum(other.started_at > job.started_at for other in rest)
    assert behind > 0, "the requeued job waited behind the whole backlog"
    print(f"worker kill -9 with {KILL_BACKLOG} jobs queued: the job finished {recovered_s:.1f} s after the kill, "
          f"ahead of {behind} of them")
