"""Fixtures for API tests: the Flask app on a real database (SQLite and PostgreSQL) with a recording queue."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.stubs import RecordingQueue


@pytest.fixture(scope="session")
def obama_bytes(faces_dir: Path) -> bytes:
    return (faces_dir / "a_frontal_obama.jpg").read_bytes()


@pytest.fixture(scope="session")
def grass_bytes(faces_dir: Path) -> bytes:
    return (faces_dir / "f_noface_grass.jpg").read_bytes()


@pytest.fixture
def settings(tmp_path: Path):
    from face3d.shared.config import load_settings

    return load_settings(env={}, data_dir=tmp_path / "data")


@pytest.fixture
def queue() -> RecordingQueue:
    return RecordingQueue()


@pytest.fixture
def storage(local_storage):
    return local_storage


@pytest.fixture
def app(settings, session_factory, storage, queue):
    from face3d.api.app import create_app

    app = create_app(settings, session_factory=session_factory, storage=storage, queue=queue)
    app.testing = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()
