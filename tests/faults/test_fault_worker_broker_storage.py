"""Faults on the real stack (PostgreSQL, private Valkey, private S3 server, `face3d worker` processes, sweeper):
no job is lost, none finishes twice, and an outage is waited out rather than failing the job (tests/faults/test_outages.py:
the database and storage outages with a backlog)."""
from __future__ import annotations

import os
import signal
import time

import pytest

from face3d.shared import jobs, models
from face3d.shared.states import JobState
from tests.faults.stack import wait_until
from tests.service.workers import FACES, submit

SLOW = {"video": True, "frames": 24, "render_size": 256, "texture_size": 256}     # a few seconds of work
FAST = {"video": False, "texture_size": 256}
PHOTO = FACES / "a_frontal_darkskin_woman.jpg"


def state_of(stack, job_id: str) -> models.Job:
    return jobs.get_job(stack.sf, job_id)


def wait_terminal(stack, job_id: str, worker, timeout_s: float = 90) -> models.Job:
    wait_until(lambda: state_of(stack, job_id).is_terminal, timeout_s,
               f"job {job_id} finishes (now {state_of(stack, job_id)!r}); worker log:\n{worker.log()}", 0.1)
    return state_of(stack, job_id)


def output_objects(stack, job_id: str) -> list[str]:
    client = stack.storage.client
    prefix = f"{stack.storage.prefix}jobs/{job_id}/output/"
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=stack.storage.bucket, Prefix=prefix)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def test_worker_killed_mid_job_finishes_exactly_once(fault_stack, sweeper):
    stack = fault_stack
    first = stack.new_worker("killed")
    second = None
    try:
        job_id = submit(stack.sf, stack.storage, stack.queue, PHOTO, SLOW)
        wait_until(lambda: (state_of(stack, job_id).stage or "started") not in ("started", "decode"), 60,
                   f"job runs past decoding; log:\n{first.log()}", 0.02)
        first.kill()
        killed_at = time.monotonic()
        assert state_of(stack, job_id).state is JobState.RUNNING
        second = stack.new_worker("second")
        job = wait_terminal(stack, job_id, second)
        recovered_s = time.monotonic() - killed_at
    finally:
        first.kill()
        if second is not None:
            second.stop()
    assert job.state is JobState.SUCCEEDED, (job.error_code, job.error_message, second.log())
    assert job.attempts == 2 and job_id in sweeper.touched("requeued")
    artifacts = sorted(a["key"] for a in job.result["artifacts"])
    assert output_objects(stack, job_id) == [stack.storage.prefix + key for key in artifacts]
    assert {"turntable.mp4", "face_0.glb", "result.json"} <= {a["name"] for a in job.result["artifacts"]}
    time.sleep(1.5)       # a few more sweeps: the finished job is left alone
    again = state_of(stack, job_id)
    assert (again.state, again.attempts, again.finished_at) == (job.state, job.attempts, job.finished_at)
    print(f"killed worker's job recovered and finished {recovered_s:.1f} s after the kill")


def test_broker_restart_without_persistence_loses_nothing(fault_stack, sweeper):
    stack = fault_stack
    worker = stack.new_worker("broker-restart")
    try:
        wait_until(lambda: "ready" in worker.log(), 60, "worker starts")
        long_job = submit(stack.sf, stack.storage, stack.queue, PHOTO, SLOW)
        queued = [submit(stack.sf, stack.storage, stack.queue, PHOTO, FAST) for _ in range(3)]
        wait_until(lambda: state_of(stack, long_job).state is JobState.RUNNING, 60, "first job starts")
        stack.broker.restart()                      # every queued message is gone
        restarted_at = time.monotonic()
        finished = [wait_terminal(stack, job_id, worker) for job_id in [long_job, *queued]]
        recovery_s = time.monotonic() - restarted_at
    finally:
        worker.stop()
    assert [job.state for job in finished] == [JobState.SUCCEEDED] * 4, [(j.error_code, j.error_message) for j in finished]
    assert all(job.attempts == 1 for job in finished)
    assert set(queued) <= sweeper.touched("resent")
    print(f"broker restart: 4 jobs done {recovery_s:.1f} s after the restart")


def test_storage_down_mid_job_is_waited_out_then_the_job_succeeds(fault_stack, sweeper):
    stack = fault_stack
    worker = stack.new_worker("storage")
    try:
        job_id = submit(stack.sf, stack.storage, stack.queue, PHOTO, SLOW)
        wait_until(lambda: (state_of(stack, job_id).stage or "started") not in ("started", "decode"), 60,
                   f"job runs past reading its input; log:\n{worker.log()}", 0.02)
        stack.s3.stop()
        try:
            time.sleep(8)
            assert not state_of(stack, job_id).is_terminal, "the outage must not finish the job"
        finally:
            stack.s3.start()
        restarted = time.monotonic()
        done = wait_terminal(stack, job_id, worker, timeout_s=90)
        done_after_s = time.monotonic() - restarted
        assert (done.state, done.error_code) == (JobState.SUCCEEDED, None), (done.error_message, worker.log())
        assert output_objects(stack, job_id) == sorted(stack.storage.prefix + a["key"] for a in done.result["artifacts"])
    finally:
        worker.stop()
    print(f"storage outage of 8 s mid-job: the job succeeded {done_after_s:.1f} s after S3 came back")
