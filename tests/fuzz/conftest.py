"""The API for fuzzing: AUTH_MODE=on, once on SQLite and once on PostgreSQL (which refuses NUL in text: the strings
schemathesis generates with NUL must be refused at the edge, not reach it), local storage in a temporary folder,
the recording queue instead of Celery, no rate limits or active-job cap (they would turn most generated requests into 429s), and a resolver that
answers every host with a loopback address, so a generated URL is refused (422) without any DNS or network use."""
from __future__ import annotations

import io
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.api.fakes import finish_job, post_photo

from tests.stubs import RecordingQueue

FUZZ_ENV = {"AUTH_MODE": "on", "RATE_LIMIT_SUBMIT": "off", "RATE_LIMIT_READ": "off",
            "RATE_LIMIT_BATCH_ITEMS": "off", "RATE_LIMIT_AUTH_FAILURES": "off",
            "MAX_ACTIVE_JOBS_PER_KEY": "0"}
ARTIFACT = "face_0.glb"


@dataclass
class FuzzApi:
    """The app, a valid key, and a way to make real resources the generated requests can act on."""

    app: Any
    session_factory: Any
    storage: Any
    token: str
    photo: bytes

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def new_job(self) -> str:
        """A succeeded job with one artifact, owned by the fuzzing key."""
        response = post_photo(self.app.test_client(), self.photo, headers=self.headers)
        assert response.status_code == 202, response.get_data(as_text=True)
        job_id = response.get_json()["id"]
        finish_job(self.session_factory, self.storage, job_id, {ARTIFACT: b"glTF", "result.json": b"{}"})
        return job_id

    def new_batch(self) -> str:
        """A batch with one queued item, owned by the fuzzing key."""
        client = self.app.test_client()
        batch_id = client.post("/v1/batches", json={"name": "fuzz"}, headers=self.headers).get_json()["id"]
        added = client.post(f"/v1/batches/{batch_id}/items", data={"image": (io.BytesIO(self.photo), "a.jpg")},
                            headers=self.headers, content_type="multipart/form-data")
        assert added.status_code == 201, added.get_data(as_text=True)
        return batch_id


def loopback_only(host: Any, port: Any, *args: Any, **kwargs: Any) -> list[tuple]:
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", int(port or 0)))]


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory: pytest.TempPathFactory, faces_dir: Path, db_url: str) -> Iterator[FuzzApi]:
    from face3d.api.app import create_app
    from face3d.shared.keys import create_key
    from face3d.shared.config import load_settings
    from face3d.shared.db import make_engine, make_session_factory
    from face3d.shared.storage import LocalStorage

    root = tmp_path_factory.mktemp("fuzz")
    session_factory = make_session_factory(make_engine(db_url))
    storage = LocalStorage(root / "storage")
    settings = load_settings(env=FUZZ_ENV, data_dir=root / "data")
    app = create_app(settings, session_factory=session_factory, storage=storage, queue=RecordingQueue())
    app.testing = False         # errors go through the app's handlers, as in production
    token = create_key(session_factory, name="fuzz").token
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", loopback_only)
        yield FuzzApi(app, session_factory, storage, token, (faces_dir / "a_frontal_obama.jpg").read_bytes())
    session_factory.kw["bind"].dispose()
