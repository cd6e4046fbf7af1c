"""The fault-test stack: PostgreSQL (session database), a private Valkey broker, a private S3 server, a worker
process and a sweeper thread, at the default liveness settings (a lost job is noticed within seconds as shipped)."""
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
# The liveness settings (heartbeat, resend delay, sweep interval) are the defaults: the figures these tests print
# are the README's (Reliability), measured as shipped.
DEFAULT_LIVENESS: dict[str, str] = {}


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
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", **DEFAULT_LIVENESS}
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
    with SweeperThread(fault_stack.sf, fault_stack.settings, fault_stack.queue,
                      interval_s=fault_stack.settings.sweeper_interval_s) as thread:
        yield thread
