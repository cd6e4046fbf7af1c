"""The fault-test stack: PostgreSQL (session database), a private Valkey broker, a private S3 server, a worker
process and a sweeper thread, all with short liveness timings so a lost job is noticed within seconds."""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import free_port
from tests.faults.stack import PrivateBroker, S3Server, SweeperThread, WorkerProcess

BUCKET = "face3d-faults"
FAST_LIVENESS = {"HEARTBEAT_INTERVAL_S": "0.5", "HEARTBEAT_TIMEOUT_S": "2", "QUEUED_RESEND_AFTER_S": "2",
                 "SWEEPER_INTERVAL_S": "0.5", "JOB_TIME_LIMIT_S": "120"}


@dataclass
class FaultStack:
    env: dict[str, str]
    settings: object
    sf: object
    storage: object
    queue: object                   # shared.queue.JobQueue on the private broker
    broker: PrivateBroker
    s3: S3Server
    folder: Path

    def new_worker(self, name: str) -> WorkerProcess:
        return WorkerProcess(self.env, self.folder / f"{name}.log").start()


@pytest.fixture(scope="module")
def fault_stack(postgres_url: str, tmp_path_factory) -> Iterator[FaultStack]:
    from face3d.shared.config import load_settings
    from face3d.shared.db import make_engine, make_session_factory
    from face3d.shared.migrations import upgrade
    from face3d.shared.storage import make_s3_client, make_storage
    from face3d.shared.queue import JobQueue

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        os.environ.setdefault(name, value)
    folder = tmp_path_factory.mktemp("faults")
    broker = PrivateBroker(folder / "broker", free_port())
    s3 = S3Server(free_port())
    broker.start()
    s3.start()
    make_s3_client(s3.endpoint, "us-east-1").create_bucket(Bucket=BUCKET)
    env = {"FACE3D_DATA_DIR": str(folder), "DATABASE_URL": postgres_url, "BROKER_URL": broker.url,
           "STORAGE_BACKEND": "s3", "S3_ENDPOINT_URL": s3.endpoint, "S3_BUCKET": BUCKET,
           "S3_PREFIX": f"faults-{uuid.uuid4().hex[:6]}/", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", **FAST_LIVENESS}
    upgrade(postgres_url)
    settings = load_settings(env)
    engine = make_engine(postgres_url)
    try:
        yield FaultStack(env, settings, make_session_factory(engine), make_storage(settings), JobQueue.from_settings(settings),
                         broker, s3, folder)
    finally:
        engine.dispose()
        broker.kill()
        s3.stop()


@pytest.fixture(scope="module")
def sweeper(fault_stack: FaultStack) -> Iterator[SweeperThread]:
    with SweeperThread(fault_stack.sf, fault_stack.settings, fault_stack.queue, interval_s=0.5) as thread:
        yield thread
