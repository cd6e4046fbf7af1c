"""Helpers shared by the worker tests: a real `face3d worker` subprocess and job submission as the API does it."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from face3d.shared import jobs, models
from face3d.shared.storage import input_key

ROOT = Path(__file__).resolve().parents[2]
FACES = ROOT / ".." / "shared" / "faces"


@contextmanager
def worker_process(env: dict[str, str], log_path: Path, pool: str = "solo", queues: str = "cpu",
                   concurrency: int | None = None, loglevel: str = "info") -> Iterator[subprocess.Popen]:
    """`python -m face3d.worker.cli --queues QUEUES --pool POOL` with ``env`` on top of ours; its log goes to ``log_path``."""
    full_env = {**os.environ, **env}
    command = [sys.executable, "-m", "face3d.worker.cli", "--queues", queues, "--pool", pool, "--loglevel", loglevel]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    process.log_path = log_path  # type: ignore[attr-defined]
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def submit(sf, storage, queue, photo: Path, options: dict | None = None) -> str:
    """Store the photo and create its job as the API does, then send it through ``queue`` (a JobQueue)."""
    data = photo.read_bytes()
    job_id = uuid.uuid4().hex
    key = input_key(job_id, photo.name)
    storage.put_bytes(key, data)
    jobs.create_job(sf, engine="cpu", options=options or {}, input_name=photo.name, input_key=key,
                      input_size=len(data), input_sha256=hashlib.sha256(data).hexdigest(), job_id=job_id)
    queue.send_job(job_id, "cpu")
    return job_id


def wait_terminal(sf, job_id: str, log_path: Path, timeout_s: float = 180) -> models.Job:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = jobs.get_job(sf, job_id)
        if job.is_terminal:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.state.value} after {timeout_s} s; worker log:\n"
                         + log_path.read_text(errors="replace")[-4000:])


def pool_children(process: subprocess.Popen) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()]


def describe(job: models.Job, log_path: Path) -> str:
    return (f"{job.state.value} {job.error_code}: {job.error_message}\nworker log:\n"
            + log_path.read_text(errors="replace")[-4000:])
