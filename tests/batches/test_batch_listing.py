"""GET /v1/batches (the caller's batches, newest first, cursor pages) and the webhooks of items a batch cancel
finishes."""
from __future__ import annotations

import base64
import json

import pytest

from tests.api.fakes import assert_problem
from tests.stubs import RecordingQueue


@pytest.fixture
def make_client(tmp_path, session_factory, local_storage):
    from face3d.api.app import create_app
    from face3d.shared.config import load_settings

    def build(queue=None, **overrides):
        settings = load_settings(env={"AUTH_MODE": "on", "RATE_LIMIT_SUBMIT": "off", "RATE_LIMIT_READ": "off"},
                                 data_dir=tmp_path / "data", **overrides)
        from face3d.shared import expansion

        queue = RecordingQueue() if queue is None else queue(settings)
        # the expansion a worker would run, inline
        queue.send_expand = lambda batch_id, countdown=None: expansion.expand(session_factory, settings,
                                                                              local_storage, queue, batch_id)
        app = create_app(settings, session_factory=session_factory, storage=local_storage, queue=queue)
        return app.test_client()

    return build


def bearer(session_factory, name: str, admin: bool = False) -> dict[str, str]:
    from face3d.shared.keys import create_key

    return {"Authorization": f"Bearer {create_key(session_factory, name=name, admin=admin).token}"}


def new_batch(client, headers, name: str, items: int = 1) -> str:
    body = {"name": name, "items": [{"key": f"uploads/{name}-{i}.jpg"} for i in range(items)]}
    response = client.post("/v1/batches", json=body, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["id"]


def test_list_batches_newest_first_in_pages_and_scoped_to_the_key(make_client, session_factory):
    client = make_client()
    alice, bob = bearer(session_factory, "alice"), bearer(session_factory, "bob")
    admin = bearer(session_factory, "ops", admin=True)
    created = [new_batch(client, alice, f"b{i}", items=i + 1) for i in range(3)]
    first = client.get("/v1/batches?limit=2", headers=alice)
    assert first.status_code == 200
    page = first.get_json()
    assert [b["id"] for b in page["items"]] == created[:0:-1]
    assert [b["total"] for b in page["items"]] == [3, 2] and page["items"][0]["counts"]["queued"] == 3
    assert page["next_cursor"] and "rel=\"next\"" in first.headers["Link"]
    rest = client.get(f"/v1/batches?limit=2&cursor={page['next_cursor']}", headers=alice).get_json()
    assert [b["id"] for b in rest["items"]] == created[:1] and rest["next_cursor"] is None
    assert client.get("/v1/batches", headers=bob).get_json() == {"items": [], "next_cursor": None}
    everyone = [b["id"] for b in client.get("/v1/batches?limit=200", headers=admin).get_json()["items"]]
    assert set(created) <= set(everyone)
    assert_problem(client.get("/v1/batches?limit=0", headers=alice), 422, "validation_failed")
    assert_problem(client.get("/v1/batches?cursor=nonsense", headers=alice), 400, "invalid_request")
    assert client.get("/v1/batches").status_code == 401


def test_batch_cancel_queues_the_webhooks_of_the_items_it_cancels(make_client, session_factory, redis_url):
    import redis
    import sqlalchemy as sa

    from face3d.shared import models
    from face3d.shared.queue import BATCH_QUEUE, WEBHOOK_QUEUE, WEBHOOK_TASK_NAME, JobQueue

    client = make_client(queue=JobQueue.from_settings, broker_url=redis_url)
    queue = redis.Redis.from_url(redis_url)
    queue.delete(WEBHOOK_QUEUE, BATCH_QUEUE)
    alice = bearer(session_factory, "alice")
    batch_id = new_batch(client, alice, "hooked", items=2)
    with session_factory.begin() as session:
        hooked = session.scalars(sa.select(models.Job.id).where(models.Job.batch_id == batch_id)
                                 .order_by(models.Job.input_name)).first()
        session.execute(sa.update(models.Job).where(models.Job.id == hooked)
                        .values(webhook_url="https://example.com/hook"))
    canceled = client.post(f"/v1/batches/{batch_id}/cancel", headers=alice)
    assert canceled.status_code == 202 and canceled.get_json()["counts"]["canceled"] == 2
    messages = [json.loads(raw) for raw in queue.lrange("webhooks", 0, -1)]
    assert [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in messages] == [
        (WEBHOOK_TASK_NAME, [hooked])]
    queue.delete(WEBHOOK_QUEUE, BATCH_QUEUE)     # the batch's items were sent for real too
