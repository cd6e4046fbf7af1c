"""Fixtures for the security tests: the API with AUTH_MODE=on on a real database, and three keys (A, B, admin)."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.stubs import RecordingQueue


@dataclass(frozen=True)
class Caller:
    key_id: str
    token: str
    webhook_secret: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass(frozen=True)
class Callers:
    a: Caller
    b: Caller
    admin: Caller


def new_caller(session_factory: Any, *, admin: bool = False, name: str = "") -> Caller:
    from face3d.shared.keys import create_key

    created = create_key(session_factory, name=name, admin=admin)
    return Caller(created.key.id, created.token, created.webhook_secret)


@pytest.fixture(scope="session")
def obama_bytes(faces_dir: Path) -> bytes:
    return (faces_dir / "a_frontal_obama.jpg").read_bytes()


@pytest.fixture
def make_app(session_factory, local_storage, tmp_path: Path) -> Callable[..., Any]:
    """make_app(**env) -> a test Flask app with AUTH_MODE=on plus ``env``."""
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings

    def build(**env: str) -> Any:
        from face3d.shared import expansion

        settings = load_settings(env={"AUTH_MODE": "on", **env}, data_dir=tmp_path / "data")
        queue = RecordingQueue()
        queue.on_expand = lambda batch_id: expansion.expand(session_factory, settings, local_storage, queue,
                                                            batch_id)       # the worker's part, inline
        app = create_app(settings, session_factory=session_factory, storage=local_storage, queue=queue)
        app.testing = True
        return app

    return build


@pytest.fixture
def client(make_app):
    return make_app().test_client()


@pytest.fixture
def callers(session_factory) -> Callers:
    return Callers(new_caller(session_factory, name="A"), new_caller(session_factory, name="B"),
                   new_caller(session_factory, admin=True, name="ops"))


@contextmanager
def webhook_worker(postgres_url: str, folder: Path, webhook_env: dict[str, str]) -> Iterator[tuple]:
    """A real `face3d worker` on the cpu and webhooks queues (retries wait in `webhooks`): Redis (a neighbouring db
    of ours, flushed), PostgreSQL, local storage in ``folder``, AUTH_MODE=on, private receivers allowed, plus
    ``webhook_env``. Yields (settings, session factory, worker log path, worker process)."""
    import redis as redis_lib

    from face3d.shared.config import load_settings
    from face3d.shared.db import make_engine, make_session_factory
    from face3d.shared.migrations import upgrade
    from tests.conftest import redis_url_with_offset
    from tests.service.workers import worker_process

    broker = redis_url_with_offset(1)
    redis_lib.Redis.from_url(broker).flushdb()
    env = {"FACE3D_DATA_DIR": str(folder), "DATABASE_URL": postgres_url, "BROKER_URL": broker,
           "STORAGE_BACKEND": "local", "STORAGE_DIR": str(folder / "storage"), "AUTH_MODE": "on",
           "WEBHOOK_ALLOW_PRIVATE": "1", **webhook_env}
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    try:
        with worker_process(env, folder / "worker.log", queues="cpu,webhooks") as process:
            yield load_settings(env), make_session_factory(engine), folder / "worker.log", process
    finally:
        engine.dispose()
