"""The OpenAPI document against the app itself: every served route and method is documented (walked from
``app.url_map``, so a new route cannot be forgotten), security matches the auth layer, and live answers of the
handlers match the documented status codes, media types and schemas."""
from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from face3d.api.auth import PUBLIC_BLUEPRINTS, PUBLIC_ENDPOINTS
from face3d.api.openapi import openapi_document
from tests.api.fakes import finish_job, post_photo

UNDOCUMENTED_ENDPOINTS = {"static", "web.static", "web.index"}     # the page and its files, not the API
IMPLICIT_METHODS = {"HEAD", "OPTIONS"}
RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def served_operations(app) -> dict[tuple[str, str], Any]:
    """(OpenAPI path, lower-case method) -> url_map rule, for every API route the app serves."""
    served = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in UNDOCUMENTED_ENDPOINTS:
            continue
        for method in sorted(rule.methods - IMPLICIT_METHODS):
            served[(RULE_ARGUMENT.sub(r"{\1}", rule.rule), method.lower())] = rule
    return served


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item}


def test_document_is_valid_openapi_3_1(client):
    document = client.get("/v1/openapi.json").get_json()
    validate(document)
    assert document["openapi"] == "3.1.0" and document == json.loads(json.dumps(openapi_document()))


def test_every_served_route_and_method_is_documented(app):
    served = set(served_operations(app))
    documented = documented_operations(openapi_document())
    assert served - documented == set(), "served but missing from api/openapi_paths.py"
    assert documented - served == set(), "documented but not served"
    assert ("/v1/batches/{batch_id}/results", "get") in served       # the walk really sees blueprint routes


def test_a_new_undocumented_route_would_be_caught(app):
    app.add_url_rule("/v1/jobs/<job_id>/rerun", "rerun_job", lambda job_id: "", methods=["POST"])
    missing = set(served_operations(app)) - documented_operations(openapi_document())
    assert missing == {("/v1/jobs/{job_id}/rerun", "post")}


def test_path_parameters_match_the_route_arguments(app):
    document = openapi_document()
    for (path, method), rule in served_operations(app).items():
        operation = document["paths"][path][method]
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(rule.arguments), (path, method)


def test_security_matches_the_auth_layer(app):
    document = openapi_document()
    assert document["security"] == [{"bearerAuth": []}]
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for (path, method), rule in served_operations(app).items():
        operation = document["paths"][path][method]
        public = rule.endpoint.split(".")[0] in PUBLIC_BLUEPRINTS or rule.endpoint in PUBLIC_ENDPOINTS
        assert (operation.get("security") == []) == public, (path, method)
        if not public:
            responses = operation["responses"]
            assert {"401", "429", "503"} <= set(responses), (path, method)
            assert "WWW-Authenticate" in responses["401"]["headers"]
            assert {"Retry-After", "RateLimit-Limit"} <= set(responses["429"]["headers"])


def test_problem_responses_use_the_problem_schema():
    for item in openapi_document()["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and "application/problem+json" in response.get("content", {}):
                    schema = response["content"]["application/problem+json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Problem"}


# ---------------------------------------------------------------- live answers against the document


def check_documented(response, path: str, method: str) -> Any:
    """The response's status and media type are documented for the operation, and its body fits the schema."""
    document = openapi_document()
    documented = document["paths"][path][method]["responses"]
    status = str(response.status_code)
    assert status in documented, (path, method, status, response.get_data(as_text=True))
    content = documented[status].get("content", {})
    if not content:
        assert not response.data
        return None
    media = content.get(response.mimetype) or content.get(response.mimetype.split("/")[0] + "/*") or content.get("*/*")
    assert media is not None, (path, method, response.mimetype, list(content))
    if "schema" not in media:           # a file of any type: nothing to validate
        return response.data
    schema = media.get("x-itemSchema") or media["schema"]
    bodies = ([json.loads(line) for line in response.get_data(as_text=True).splitlines()]
              if "x-itemSchema" in media else [response.get_json(force=True)])
    validator = Draft202012Validator({**schema, "components": document["components"]})
    for body in bodies:
        errors = sorted(validator.iter_errors(body), key=str)
        assert not errors, (path, method, [e.message for e in errors])
    return bodies if "x-itemSchema" in media else bodies[0]


def test_job_answers_match_the_document(client, obama_bytes, session_factory, storage):
    submitted = post_photo(client, obama_bytes, options={"max_faces": 1})
    job = check_documented(submitted, "/v1/jobs", "post")
    assert job["state"] == "queued" and submitted.headers["Location"] == f"/v1/jobs/{job['id']}"
    finish_job(session_factory, storage, job["id"], {"face_0.glb": b"glTF"})
    done = check_documented(client.get(f"/v1/jobs/{job['id']}"), "/v1/jobs/{job_id}", "get")
    assert done["state"] == "succeeded" and done["artifacts"][0]["name"] == "face_0.glb"
    page = check_documented(client.get("/v1/jobs?limit=5"), "/v1/jobs", "get")
    assert [item["id"] for item in page["items"]] == [job["id"]]
    check_documented(client.get(f"/v1/jobs/{job['id']}/webhook-deliveries"),
                     "/v1/jobs/{job_id}/webhook-deliveries", "get")
    check_documented(client.get(f"/v1/jobs/{job['id']}/artifacts/face_0.glb"),
                     "/v1/jobs/{job_id}/artifacts/{name}", "get")
    check_documented(client.post(f"/v1/jobs/{job['id']}/cancel"), "/v1/jobs/{job_id}/cancel", "post")
    check_documented(client.delete(f"/v1/jobs/{job['id']}"), "/v1/jobs/{job_id}", "delete")
    problem = check_documented(client.get(f"/v1/jobs/{job['id']}"), "/v1/jobs/{job_id}", "get")
    assert problem["code"] == "not_found"


@pytest.mark.parametrize("body, status, code", [
    ({"options": {"max_faces": 1}}, 400, "invalid_request"),
    ({"image_url": 42}, 422, "validation_failed"),
    ({"image_url": "http://127.0.0.1/face.jpg"}, 422, "url_not_allowed"),
])
def test_json_submit_problems_match_the_document(client, body, status, code):
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == status
    assert check_documented(response, "/v1/jobs", "post")["code"] == code


def test_batch_answers_match_the_document(client, obama_bytes, session_factory, storage):
    batch = check_documented(client.post("/v1/batches", json={"name": "docs"}), "/v1/batches", "post")
    path = f"/v1/batches/{batch['id']}"
    added = client.post(f"{path}/items", data={"image": (io.BytesIO(obama_bytes), "a.jpg")},
                        content_type="multipart/form-data")
    item = check_documented(added, "/v1/batches/{batch_id}/items", "post")
    assert item["created"] is True and item["name"] == "a.jpg"
    finish_job(session_factory, storage, item["job_id"], {"face_0.obj": b"v 0 0 0\n"})
    lines = check_documented(client.get(f"{path}/results"), "/v1/batches/{batch_id}/results", "get")
    assert [(line["name"], line["state"], line["faces"]) for line in lines] == [("a.jpg", "succeeded", 1)]
    view = check_documented(client.get(path), "/v1/batches/{batch_id}", "get")
    assert view["total"] == 1 and view["done"] == 1
    listed = check_documented(client.get("/v1/batches?limit=5"), "/v1/batches", "get")
    assert [b["id"] for b in listed["items"]] == [batch["id"]]
    check_documented(client.post(f"{path}/cancel"), "/v1/batches/{batch_id}/cancel", "post")
    refused = client.post("/v1/batches", json={"items": [{"key": "x", "url": "s3://b/k"}]})
    assert check_documented(refused, "/v1/batches", "post")["code"] == "validation_failed"


def test_health_answers_match_the_document(client):
    assert check_documented(client.get("/healthz"), "/healthz", "get") == {"status": "ok"}
    check_documented(client.get("/readyz"), "/readyz", "get")


def test_the_document_states_the_constraints_the_api_enforces():
    """The drift schemathesis found: 414 and 409 undocumented; cursor, state list, ids, exactly-one-of and the
    control-character rule not in the schema."""
    document = openapi_document()
    operations = [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]
    assert all("414" in op["responses"] for _, _, op in operations)
    assert all("422" in op["responses"] for _, _, op in operations if op.get("security") != [])
    assert "409" in document["paths"]["/v1/batches/{batch_id}/items"]["post"]["responses"]
    parameters = {(path, p["name"]): p["schema"] for path, _, op in operations for p in op.get("parameters", [])}
    assert parameters[("/v1/jobs/{job_id}", "job_id")]["pattern"] == "^[0-9a-f]{32}$"
    assert parameters[("/v1/jobs", "cursor")]["pattern"] == "^[A-Za-z0-9_-]*$"
    state = re.compile(parameters[("/v1/batches/{batch_id}/results", "state")]["pattern"])
    assert state.match("terminal") and state.match("queued,failed") and not state.match("terminal,queued")
    schemas = document["components"]["schemas"]
    assert len(schemas["BatchItemIn"]["oneOf"]) == 2 and "not" in schemas["BatchCreate"]
    no_controls = re.compile(schemas["BatchItemIn"]["properties"]["name"]["anyOf"][0]["pattern"])
    assert no_controls.match("photo 1.jpg") and not no_controls.match("a\x00b")
    assert schemas["UrlSubmission"]["properties"]["image_url"]["minLength"] == 1
