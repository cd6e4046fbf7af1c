"""Per-key limits meet batches: batch items leave the active-job cap alone, and per-item uploads to a batch have
their own rate bucket (RATE_LIMIT_BATCH_ITEMS) instead of spending the submit budget."""
from __future__ import annotations

from face3d.shared.config import load_settings
from tests.api.fakes import assert_problem, post_photo


def new_batch(client, headers, items: int = 0) -> str:
    body = {"items": [{"key": f"uploads/photo-{i}.jpg"} for i in range(items)]} if items else {}
    response = client.post("/v1/batches", json=body, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()["id"]


def add_item(client, headers, batch_id: str, name: str):
    return client.post(f"/v1/batches/{batch_id}/items", json={"key": f"uploads/{name}"}, headers=headers)


def test_batch_items_do_not_count_towards_the_active_job_cap(make_app, callers, obama_bytes):
    client = make_app(MAX_ACTIVE_JOBS_PER_KEY="2").test_client()
    batch_id = new_batch(client, callers.a.headers, items=5)
    assert client.get(f"/v1/batches/{batch_id}", headers=callers.a.headers).get_json()["counts"]["queued"] == 5
    assert post_photo(client, obama_bytes, headers=callers.a.headers).status_code == 202
    assert post_photo(client, obama_bytes, headers=callers.a.headers).status_code == 202
    assert_problem(post_photo(client, obama_bytes, headers=callers.a.headers), 429, "too_many_active_jobs")


def test_batch_item_uploads_have_their_own_rate_bucket(make_app, callers, obama_bytes):
    client = make_app(RATE_LIMIT_SUBMIT="2/minute", RATE_LIMIT_BATCH_ITEMS="4/minute").test_client()
    batch_id = new_batch(client, callers.a.headers)                                 # submit 1 of 2
    for index in range(4):
        response = add_item(client, callers.a.headers, batch_id, f"item-{index}.jpg")
        assert response.status_code == 201, response.get_data(as_text=True)
        assert response.headers["RateLimit-Limit"] == "4"
    refused = assert_problem(add_item(client, callers.a.headers, batch_id, "item-5.jpg"), 429, "rate_limited")
    assert "batch item rate limit of 4" in refused["detail"]
    assert post_photo(client, obama_bytes, headers=callers.a.headers).status_code == 202   # submit 2 of 2
    assert_problem(post_photo(client, obama_bytes, headers=callers.a.headers), 429, "rate_limited")


def test_batch_item_rate_setting():
    assert load_settings({}).rate_limit_batch_items == (600, 60)
    assert load_settings({"RATE_LIMIT_BATCH_ITEMS": "50/second"}).rate_limit_batch_items == (50, 1)
    assert load_settings({"RATE_LIMIT_BATCH_ITEMS": "off"}).rate_limit_batch_items is None
