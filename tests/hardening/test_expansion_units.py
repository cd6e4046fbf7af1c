"""Expansion in a worker, step by step: the request answers ``expanding`` with nothing inserted; the worker's
pages are resumable (a crash mid-way loses and duplicates nothing); the per-key cap pauses it; names are shown
sanitised while the stored name stays as sent."""
from __future__ import annotations

import json

import pytest


def results(client, batch_id: str) -> list[dict]:
    return [json.loads(line) for line in client.get(f"/v1/batches/{batch_id}/results").get_data().splitlines()]


def test_a_manifest_is_stored_and_expanded_by_the_worker(api, queue, local_storage):
    client, _, expand = api()
    items = [{"key": f"uploads/set/{i}.jpg"} for i in range(4)] + [{"key": "jobs/other/input/a.jpg"},
                                                                    {"url": "s3://not-allowed/b.jpg"}]
    created = client.post("/v1/batches", json={"items": items, "options": {"video": False}})
    assert created.status_code == 201, created.get_data()
    batch = created.get_json()
    assert (batch["state"], batch["total"], queue.expansions) == ("expanding", 0, [batch["id"]])
    assert queue.items == []                                      # nothing is queued by the request
    assert expand(batch["id"]) == "expanded"
    view = client.get(f"/v1/batches/{batch['id']}").get_json()
    assert view["total"] == 6 and view["state"] == "running" and view["counts"]["failed"] == 2
    assert sum(len(ids) for _, ids in queue.items) == 4
    lines = {line["name"]: line for line in results(client, batch["id"])}
    assert lines["a.jpg"]["error"]["code"] == "validation_failed"          # not under uploads/: its own failure
    assert lines["b.jpg"]["error"]["code"] == "validation_failed"
    assert not any(key.startswith("batches/") for key, _ in local_storage.list_objects())   # source deleted
    assert expand(batch["id"]) == "ignored"                                  # a redelivery does nothing


def test_malformed_items_are_refused_by_the_request(api, queue):
    client, _, _ = api()
    refused = client.post("/v1/batches", json={"items": [{"key": "uploads/a.jpg"}, {"name": "neither"}]})
    assert refused.status_code == 422 and "items[1]" in refused.get_json()["detail"]
    assert queue.expansions == []


def test_an_interrupted_expansion_resumes_without_duplicates(api, queue, session_factory, monkeypatch):
    from face3d.shared import batches

    client, _, expand = api(BATCH_CHUNK_SIZE="3")
    items = [{"key": "uploads/same.jpg"} for _ in range(10)]             # one name ten times: same.jpg, same~2.jpg...
    batch_id = client.post("/v1/batches", json={"items": items}).get_json()["id"]
    real, calls = batches.add_expanded, []

    def crash_on_third_page(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("worker killed")
        return real(*args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(batches, "add_expanded", crash_on_third_page)
        with pytest.raises(RuntimeError):
            expand(batch_id)
    middle = client.get(f"/v1/batches/{batch_id}").get_json()
    assert (middle["state"], middle["total"]) == ("expanding", 6)             # counts grow page by page
    assert expand(batch_id) == "expanded"
    names = [line["name"] for line in results(client, batch_id)]
    assert names == ["same.jpg"] + [f"same~{i}.jpg" for i in range(2, 11)]     # in submission order
    assert batches.get_batch(session_factory, batch_id).expanded == 10


def test_the_in_flight_cap_pauses_expansion_until_items_finish(api, queue, session_factory):
    from face3d.shared import expansion, jobs

    client, _, expand = api(BATCH_CHUNK_SIZE="2", MAX_BATCH_ITEMS_IN_FLIGHT_PER_KEY="3")
    batch_id = client.post("/v1/batches", json={"items": [{"key": f"uploads/{i}.jpg"} for i in range(5)]}).get_json()["id"]
    with pytest.raises(expansion.Paused):
        expand(batch_id)
    assert client.get(f"/v1/batches/{batch_id}").get_json()["total"] == 2
    for _, ids in queue.items:
        jobs.fail_all(session_factory, ids, jobs.ErrorCode.NOT_FOUND, "done")
    assert expand(batch_id) == "expanded"           # 2 + 1 more: within the cap again
    assert client.get(f"/v1/batches/{batch_id}").get_json()["total"] == 5


def test_item_uploads_past_the_cap_get_429(api, faces_dir):
    import io

    client, _, _ = api(MAX_BATCH_ITEMS_IN_FLIGHT_PER_KEY="1")
    batch_id = client.post("/v1/batches", json={}).get_json()["id"]
    photo = (faces_dir / "g_grayscale_hopper.jpg").read_bytes()

    def send(name):
        return client.post(f"/v1/batches/{batch_id}/items", data={"image": (io.BytesIO(photo), name)},
                           content_type="multipart/form-data")

    assert send("a.jpg").status_code == 201
    refused = send("b.jpg")
    assert refused.status_code == 429 and refused.get_json()["code"] == "too_many_active_jobs"


def test_a_zip_is_expanded_by_the_worker(api, queue, faces_dir, local_storage):
    from tests.hardening.conftest import zip_bytes
    import io

    client, _, expand = api()
    photo = (faces_dir / "g_grayscale_hopper.jpg").read_bytes()
    data = zip_bytes({"x/h.jpg": photo, "y/h.jpg": photo, "notes.txt": b"text", "__MACOSX/._h.jpg": b"fork"})
    created = client.post("/v1/batches", data={"archive": (io.BytesIO(data), "p.zip")},
                          content_type="multipart/form-data").get_json()
    assert created["state"] == "expanding" and created["source"] == "archive:p.zip"
    assert [key for key, _ in local_storage.list_objects()] == [f"batches/{created['id']}/source.zip"]
    assert expand(created["id"]) == "expanded"
    lines = {line["name"]: line for line in results(client, created["id"])}
    assert set(lines) == {"x/h.jpg", "y/h.jpg", "notes.txt"}
    assert lines["notes.txt"]["error"]["code"] == "unsupported_media_type"
    keys = [key for key, _ in local_storage.list_objects()]
    assert len(keys) == 2 and all(key.startswith("jobs/") for key in keys)      # the zip itself is gone


def test_an_unreadable_source_fails_the_batch_with_a_reason(api, local_storage):
    client, _, expand = api()
    batch_id = client.post("/v1/batches", json={"items": [{"key": "uploads/a.jpg"}]}).get_json()["id"]
    local_storage.delete_prefix(f"batches/{batch_id}/")
    assert expand(batch_id) == "failed"
    view = client.get(f"/v1/batches/{batch_id}").get_json()
    assert view["state"] == "failed" and view["expand_error"].startswith("not_found")


def test_names_are_shown_sanitised_and_stored_as_sent(api, session_factory):
    """Bidi overrides and zero-width characters pass the edge (they are text) but are never echoed; control
    characters (line breaks, NUL) are refused at the edge (api/edge.py), so no manifest stores them."""
    from face3d.shared.jobs import list_jobs

    client, _, expand = api()
    raw = "evil\u202etxt\u200b.jpg"
    batch_id = client.post("/v1/batches", json={"items": [{"key": "uploads/a.jpg", "name": raw}]}).get_json()["id"]
    expand(batch_id)
    shown = results(client, batch_id)[0]["name"]
    assert shown == "evil\ufffdtxt\ufffd.jpg"
    assert list_jobs(session_factory)[0][0].input_name == raw                 # stored as sent
    forged = client.post("/v1/batches", json={"items": [{"key": "uploads/a.jpg", "name": "a.jpg\r\nX-Injected: 1\x00"}]})
    assert forged.status_code == 422


def test_the_sweeper_resends_a_lost_expansion(api, queue, session_factory, make_settings):
    from datetime import timedelta

    from face3d.shared.db import utcnow
    from face3d.worker.sweeper import sweep_once

    client, settings, expand = api()
    batch_id = client.post("/v1/batches", json={"items": [{"key": "uploads/a.jpg"}]}).get_json()["id"]
    assert sweep_once(session_factory, settings, queue).expansions == []            # not stale yet
    later = utcnow() + timedelta(seconds=settings.queued_resend_after_s + 1)
    assert sweep_once(session_factory, settings, queue, now=later).expansions == [batch_id]
    assert sweep_once(session_factory, settings, queue, now=later).expansions == []   # once per period
    assert queue.expansions == [batch_id, batch_id]
    assert expand(batch_id) == "expanded"
    much_later = later + timedelta(seconds=settings.queued_resend_after_s + 1)
    assert sweep_once(session_factory, settings, queue, now=much_later).expansions == []
