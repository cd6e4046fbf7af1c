"""With API keys on, a batch belongs to the key that made it: another key gets 404, an admin key sees it."""
from __future__ import annotations

import pytest


@pytest.fixture
def auth_client(tmp_path, session_factory, local_storage):
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings

    settings = load_settings(env={"AUTH_MODE": "on", "RATE_LIMIT_SUBMIT": "off", "RATE_LIMIT_READ": "off"},
                             data_dir=tmp_path / "data")
    from tests.stubs import RecordingQueue

    queue = RecordingQueue()
    app = create_app(settings, session_factory=session_factory, storage=local_storage, queue=queue)
    return app.test_client(), queue


def test_batches_are_scoped_to_their_key(auth_client, session_factory, faces_dir):
    from face3d.shared.keys import create_key

    client, queue = auth_client
    alice, bob = (create_key(session_factory, name=n).token for n in ("alice", "bob"))
    admin = create_key(session_factory, name="admin", admin=True).token

    def call(method, path, token, **kwargs):
        return client.open(path, method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs)

    assert client.post("/v1/batches", json={}).status_code == 401
    created = call("POST", "/v1/batches", alice, json={"options": {"video": False}}).get_json()
    image = {"image": (open(faces_dir / "f_noface_grass.jpg", "rb"), "grass.jpg")}
    item = call("POST", f"/v1/batches/{created['id']}/items", alice, data=image, content_type="multipart/form-data")
    assert item.status_code == 201 and queue.sent_ids == [item.get_json()["job_id"]]
    for path in (f"/v1/batches/{created['id']}", f"/v1/batches/{created['id']}/results"):
        assert call("GET", path, bob).status_code == 404
        assert call("GET", path, alice).status_code == 200
        assert call("GET", path, admin).status_code == 200
    assert call("POST", f"/v1/batches/{created['id']}/cancel", bob).status_code == 404
    from face3d.shared.jobs import get_job

    assert get_job(session_factory, item.get_json()["job_id"]).owner_id is not None
