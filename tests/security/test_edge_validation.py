"""Requests that used to answer 500 get the one 4xx problem shape, on SQLite and PostgreSQL: JSON nested too deep,
non-ASCII digits, a Prefer header with thousands of digits, NUL and other control characters in every string that
reaches the database (PostgreSQL refuses NUL in text: DataError), and a database DataError/IntegrityError at all."""
from __future__ import annotations

import base64
import io
import json
import threading

import pytest

from tests.api.fakes import assert_problem, finish_job, post_photo

DEEP = "[" * 100_000 + "]" * 100_000           # past Python's recursion limit: json.loads raised RecursionError
NESTED = json.dumps({"a": json.loads("[" * 40 + "]" * 40)})   # parses fine, deeper than the API accepts


@pytest.fixture
def api(make_app):
    app = make_app(RATE_LIMIT_SUBMIT="off", RATE_LIMIT_READ="off", RATE_LIMIT_BATCH_ITEMS="off")
    app.testing = False             # errors through the app's handlers, as in production
    return app.test_client()


def _batch(api, headers) -> str:
    return api.post("/v1/batches", json={"name": "b"}, headers=headers).get_json()["id"]


@pytest.mark.parametrize("body", [DEEP, NESTED], ids=["recursion-limit", "over-max-depth"])
def test_deeply_nested_json_is_a_400_on_every_json_route(api, callers, obama_bytes, body):
    headers = {**callers.a.headers, "Content-Type": "application/json"}
    batch_id = _batch(api, callers.a.headers)
    for path in ("/v1/jobs", "/v1/batches", f"/v1/batches/{batch_id}/items"):
        assert_problem(api.post(path, data=body, headers=headers), 400, "invalid_request")
    form = api.post("/v1/jobs", data={"image": (io.BytesIO(obama_bytes), "a.jpg"), "options": body},
                    headers=callers.a.headers, content_type="multipart/form-data")     # the options form field
    assert form.status_code == 400, form.get_data(as_text=True)
    archive = api.post("/v1/batches", data={"archive": (io.BytesIO(b"PK\x05\x06" + bytes(18)), "a.zip"),
                                            "options": body}, headers=callers.a.headers,
                       content_type="multipart/form-data")
    assert archive.status_code == 400, archive.get_data(as_text=True)


@pytest.mark.parametrize("limit", ["\u00b2", "\u0663", "1" * 5000, "+5", " 5"])
def test_limit_takes_ascii_digits_only(api, callers, limit):
    for path in ("/v1/jobs", "/v1/batches"):
        assert_problem(api.get(path, query_string={"limit": limit}, headers=callers.a.headers), 422,
                       "validation_failed")


def test_prefer_wait_with_thousands_of_digits_is_capped_not_a_crash(api, callers, obama_bytes, session_factory,
                                                                    local_storage):
    job_id = post_photo(api, obama_bytes, headers=callers.a.headers).get_json()["id"]
    finish_job(session_factory, local_storage, job_id)
    response = api.get(f"/v1/jobs/{job_id}", headers={**callers.a.headers, "Prefer": "wait=" + "9" * 5000})
    assert response.status_code == 200 and response.headers["Preference-Applied"] == "wait=60"
    unicode_digits = api.get(f"/v1/jobs/{job_id}", headers={**callers.a.headers, "Prefer": "wait=\u0663"})
    assert unicode_digits.status_code == 200 and "Preference-Applied" not in unicode_digits.headers


NUL_IDS = ["ab\x00cd", "\x00", "x\x1by"]


@pytest.mark.parametrize("bad", NUL_IDS, ids=["nul", "only-nul", "escape"])
def test_control_characters_in_id_paths_are_422(api, callers, bad):
    quoted = bad.replace("\x00", "%00").replace("\x1b", "%1B")
    for method, path in [("GET", f"/v1/jobs/{quoted}"), ("DELETE", f"/v1/jobs/{quoted}"),
                         ("POST", f"/v1/jobs/{quoted}/cancel"), ("POST", f"/v1/jobs/{quoted}/retry"),
                         ("GET", f"/v1/jobs/{quoted}/artifacts/a.glb"), ("GET", f"/v1/jobs/{quoted}/webhook-deliveries"),
                         ("GET", f"/v1/batches/{quoted}"), ("GET", f"/v1/batches/{quoted}/results"),
                         ("POST", f"/v1/batches/{quoted}/cancel")]:
        response = api.open(path, method=method, headers=callers.a.headers)
        assert_problem(response, 422, "validation_failed")


def test_control_characters_in_a_cursor_even_inside_its_base64_are_refused(api, callers):
    inner = base64.urlsafe_b64encode(json.dumps(["2024-01-01T00:00:00+00:00", "a\x00b"]).encode()).decode()
    for cursor in ["abc\x00", inner]:
        for path in ("/v1/jobs", "/v1/batches"):
            response = api.get(path, query_string={"cursor": cursor}, headers=callers.a.headers)
            assert response.status_code in (400, 422), (path, cursor, response.get_data(as_text=True))
            assert response.mimetype == "application/problem+json"


def test_control_characters_in_names_urls_and_keys_are_422(api, callers, obama_bytes):
    headers = callers.a.headers
    assert_problem(api.post("/v1/batches", json={"name": "a\x00b"}, headers=headers), 422, "validation_failed")
    batch_id = _batch(api, headers)
    item = api.post(f"/v1/batches/{batch_id}/items", data={"image": (io.BytesIO(obama_bytes), "a.jpg"),
                                                            "name": "x\x00y"}, headers=headers,
                    content_type="multipart/form-data")
    assert_problem(item, 422, "validation_failed")
    named_file = api.post(f"/v1/batches/{batch_id}/items", data={"image": (io.BytesIO(obama_bytes), "a\x00.jpg")},
                          headers=headers, content_type="multipart/form-data")
    assert_problem(named_file, 422, "validation_failed")
    reference = api.post(f"/v1/batches/{batch_id}/items", json={"key": "uploads/a\x00.jpg"}, headers=headers)
    assert_problem(reference, 422, "validation_failed")
    hooked = post_photo(api, obama_bytes, options={"webhook_url": "https://hooks.example/\x00"}, headers=headers)
    assert_problem(hooked, 422, "validation_failed")
    replay = post_photo(api, obama_bytes, headers={**headers, "Idempotency-Key": "k\x00"})
    assert_problem(replay, 422, "validation_failed")
    surrogate = api.post("/v1/batches", data='{"name": "a\\ud800"}', headers={**headers,
                                                                             "Content-Type": "application/json"})
    assert_problem(surrogate, 422, "validation_failed")


def test_a_database_data_error_is_a_422_and_an_integrity_error_a_409(make_app, callers, monkeypatch):
    import sqlalchemy as sa

    from face3d.shared import jobs

    app = make_app()
    app.testing = False
    client = app.test_client()
    for error, status, code in [(sa.exc.DataError("SELECT", {}, ValueError("bad")), 422, "validation_failed"),
                                (sa.exc.IntegrityError("INSERT", {}, ValueError("dup")), 409, "conflict")]:
        def refuse(*args, _error=error, **kwargs):
            raise _error

        monkeypatch.setattr(jobs, "list_jobs", refuse)
        assert_problem(client.get("/v1/jobs", headers=callers.a.headers), status, code)


def test_the_active_job_cap_holds_under_concurrent_submits(make_app, callers, obama_bytes, session_factory):
    """Check-then-insert let 7 through with a cap of 5; the count now happens under the key's row lock."""
    from face3d.shared import jobs

    app = make_app(MAX_ACTIVE_JOBS_PER_KEY="5", RATE_LIMIT_SUBMIT="off")
    statuses: list[int] = []
    start = threading.Barrier(12)

    def submit() -> None:
        client = app.test_client()
        start.wait()
        statuses.append(post_photo(client, obama_bytes, headers=callers.a.headers).status_code)

    threads = [threading.Thread(target=submit) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202] * 5 + [429] * 7, statuses
    assert jobs.count_active_jobs(session_factory, callers.a.key_id) == 5


@pytest.mark.parametrize("text", ['{"a": "x\\u0000"}', '{"a\\u001b": 1}', '{"a": "x\x7f"}', '{"a": "é\u0085"}',
                                  '{"a": "\\ud800"}', '{"a": ["\\n"]}'])
def test_every_way_a_refused_character_can_enter_json_is_seen(text):
    """The string walk is skipped for text that cannot hold one (a 400,000-item manifest): this is that test."""
    from face3d.api.edge import loads_checked
    from face3d.shared.errors import Face3dError

    for encoded in (text.encode("utf-8", "surrogatepass"), text.encode("utf-16", "surrogatepass"), text):
        with pytest.raises(Face3dError):
            loads_checked(encoded)
    assert loads_checked('{"a": "\\\\n \\\\u0000 é"}') == {"a": "\\n \\u0000 é"}
