"""Key isolation on every route that names a job or batch: walked from ``app.url_map``, so a new id-taking route with
no mapping here (and so, maybe, no ownership check) fails the test. Key B acting on key A's resources gets the one
404 not_found problem and changes nothing; an admin key reaches them; the lists show B none of A's rows."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from face3d.shared import jobs
from face3d.shared.errors import ErrorCode
from tests.api.fakes import assert_problem, finish_job, post_photo
from tests.security.conftest import Callers

IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
ARTIFACT = "face_0.glb"


@dataclass(frozen=True)
class Owned:
    """Key A's resources: a queued job (to cancel / delete), a finished one (with an artifact), a failed one (to
    retry), a batch with an item."""

    queued_job: str
    done_job: str
    batch: str
    failed_job: str


Request = tuple[str, dict[str, Any]]        # (url, keyword arguments of the test client's method)


def _image_form(photo: bytes) -> dict[str, Any]:
    return {"data": {"image": (io.BytesIO(photo), "b.jpg")}, "content_type": "multipart/form-data"}


# (rule, method) -> how to call it on A's resources. Every id-taking /v1 route must be here.
ROUTES: dict[tuple[str, str], Callable[[Owned, bytes], Request]] = {
    ("/v1/jobs/<job_id>", "GET"): lambda o, _: (f"/v1/jobs/{o.queued_job}", {}),
    ("/v1/jobs/<job_id>/webhook-deliveries", "GET"): lambda o, _: (f"/v1/jobs/{o.queued_job}/webhook-deliveries", {}),
    ("/v1/jobs/<job_id>/artifacts/<name>", "GET"): lambda o, _: (f"/v1/jobs/{o.done_job}/artifacts/{ARTIFACT}", {}),
    ("/v1/jobs/<job_id>/archive", "GET"): lambda o, _: (f"/v1/jobs/{o.done_job}/archive", {}),
    ("/v1/jobs/<job_id>/input", "GET"): lambda o, _: (f"/v1/jobs/{o.done_job}/input", {}),
    ("/v1/batches/<batch_id>", "GET"): lambda o, _: (f"/v1/batches/{o.batch}", {}),
    ("/v1/batches/<batch_id>/results", "GET"): lambda o, _: (f"/v1/batches/{o.batch}/results", {}),
    ("/v1/batches/<batch_id>/items", "POST"): lambda o, photo: (f"/v1/batches/{o.batch}/items", _image_form(photo)),
    ("/v1/jobs/<job_id>/cancel", "POST"): lambda o, _: (f"/v1/jobs/{o.queued_job}/cancel", {}),
    ("/v1/jobs/<job_id>/retry", "POST"): lambda o, _: (f"/v1/jobs/{o.failed_job}/retry", {}),
    ("/v1/batches/<batch_id>/cancel", "POST"): lambda o, _: (f"/v1/batches/{o.batch}/cancel", {}),
    ("/v1/jobs/<job_id>", "DELETE"): lambda o, _: (f"/v1/jobs/{o.queued_job}", {}),    # last: it removes the job
}
LIST_ROUTES = {("/v1/jobs", "GET"), ("/v1/batches", "GET")}


def id_taking_operations(app: Any) -> set[tuple[str, str]]:
    """(rule, method) of every /v1 route with a path argument: each names one owned resource."""
    return {(rule.rule, method) for rule in app.url_map.iter_rules()
            if rule.rule.startswith("/v1/") and rule.arguments
            for method in rule.methods - IMPLICIT_METHODS}


def call(client: Any, method: str, request: Request, headers: dict[str, str]) -> Any:
    url, kwargs = request
    return client.open(url, method=method, headers=headers, **kwargs)


def make_owned(client: Any, callers: Callers, session_factory: Any, storage: Any, photo: bytes) -> Owned:
    a = callers.a.headers
    queued = post_photo(client, photo, headers=a).get_json()["id"]
    done = post_photo(client, photo, headers=a, options={"max_faces": 1}).get_json()["id"]
    finish_job(session_factory, storage, done, {ARTIFACT: b"glTF"})
    batch = client.post("/v1/batches", json={"name": "A's"}, headers=a).get_json()["id"]
    added = client.post(f"/v1/batches/{batch}/items", headers=a, **_image_form(photo))
    assert added.status_code == 201, added.get_data(as_text=True)
    failed = post_photo(client, photo, headers=a, options={"max_faces": 2}).get_json()["id"]
    assert jobs.mark_failed(session_factory, failed, ErrorCode.NO_FACE_DETECTED, "no face")
    return Owned(queued, done, batch, failed)


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def owned(app, callers, session_factory, local_storage, obama_bytes) -> Owned:
    return make_owned(app.test_client(), callers, session_factory, local_storage, obama_bytes)


def test_every_id_taking_route_is_mapped(app):
    served = id_taking_operations(app)
    assert served - set(ROUTES) == set(), "an id-taking route without a key-isolation check: add it to ROUTES"
    assert set(ROUTES) - served == set(), "ROUTES names a route the app no longer serves"


def test_a_new_id_taking_route_would_be_caught(app):
    app.add_url_rule("/v1/jobs/<job_id>/rerun", "rerun_job", lambda job_id: "", methods=["POST"])
    assert id_taking_operations(app) - set(ROUTES) == {("/v1/jobs/<job_id>/rerun", "POST")}


def test_another_key_gets_404_everywhere_and_changes_nothing(app, callers, owned, obama_bytes):
    client = app.test_client()
    for (rule, method), build in ROUTES.items():
        response = call(client, method, build(owned, obama_bytes), callers.b.headers)
        assert response.status_code == 404, (rule, method, response.get_data(as_text=True))
        assert_problem(response, 404, "not_found")
    a = callers.a.headers
    job = client.get(f"/v1/jobs/{owned.queued_job}", headers=a).get_json()
    assert job["state"] == "queued" and job["cancel_requested"] is False
    assert client.get(f"/v1/jobs/{owned.done_job}/artifacts/{ARTIFACT}", headers=a).data == b"glTF"
    batch = client.get(f"/v1/batches/{owned.batch}", headers=a).get_json()
    assert batch["total"] == 1 and batch["state"] != "canceled", batch
    retried = [item for item in client.get("/v1/jobs?limit=100", headers=a).get_json()["items"] if item["retry_of"]]
    assert retried == []                                        # B's retry made no job


def test_the_admin_key_reaches_every_route(app, callers, owned, obama_bytes):
    client = app.test_client()
    for (rule, method), build in ROUTES.items():
        response = call(client, method, build(owned, obama_bytes), callers.admin.headers)
        assert response.status_code in (200, 201, 202, 204), (rule, method, response.get_data(as_text=True))
    assert client.get(f"/v1/batches/{owned.batch}", headers=callers.a.headers).get_json()["state"] == "canceled"
    assert_problem(client.get(f"/v1/jobs/{owned.queued_job}", headers=callers.a.headers), 404, "not_found")


def test_lists_show_another_key_none_of_the_rows(app, callers, owned, obama_bytes):
    client = app.test_client()
    served_lists = {(rule.rule, method) for rule in app.url_map.iter_rules() if rule.rule in {"/v1/jobs", "/v1/batches"}
                    for method in rule.methods - IMPLICIT_METHODS}
    assert LIST_ROUTES <= served_lists
    own_job = post_photo(client, obama_bytes, headers=callers.b.headers).get_json()["id"]
    own_batch = client.post("/v1/batches", json={}, headers=callers.b.headers).get_json()["id"]
    a_rows = {owned.queued_job, owned.done_job, owned.batch}

    def ids(path: str, caller_headers: dict[str, str]) -> set[str]:
        response = client.get(f"{path}?limit=100", headers=caller_headers)
        assert response.status_code == 200, response.get_data(as_text=True)
        return {item["id"] for item in response.get_json()["items"]}

    assert ids("/v1/jobs", callers.b.headers) == {own_job}
    assert ids("/v1/batches", callers.b.headers) == {own_batch}
    results = client.get(f"/v1/batches/{owned.batch}/results", headers=callers.a.headers).get_data(as_text=True)
    a_batch_items = {json.loads(line)["job_id"] for line in results.splitlines()}
    assert ids("/v1/jobs", callers.a.headers) == {owned.queued_job, owned.done_job, owned.failed_job} | a_batch_items
    assert a_rows <= ids("/v1/jobs", callers.admin.headers) | ids("/v1/batches", callers.admin.headers)
    assert own_job in ids("/v1/jobs", callers.admin.headers)

