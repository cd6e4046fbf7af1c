"""Property tests of the API from its own OpenAPI document (schemathesis): every operation gets generated requests,
valid and invalid (multipart garbage for `image` included), in-process over WSGI, and every answer must be no 5xx and
conform to the document's status codes, media types, headers and schemas. Seeded, so CI runs the same cases."""
from __future__ import annotations

import copy
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from face3d.api.openapi import openapi_document
from face3d.shared.imaging import sniff_image_type
from tests.fuzz.conftest import ARTIFACT, FuzzApi

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
PUBLIC_PATHS = {"/healthz", "/readyz", "/v1/openapi.json", "/v1/limits"}
# Seeded for CI; FACE3D_FUZZ_RANDOM=1 (with e.g. FACE3D_FUZZ_EXAMPLES=200) explores new cases locally.
EXPLORE = bool(os.environ.get("FACE3D_FUZZ_RANDOM"))
FUZZ = settings(max_examples=int(os.environ.get("FACE3D_FUZZ_EXAMPLES", "30")), derandomize=not EXPLORE,
                deadline=None, database=None, suppress_health_check=list(HealthCheck))
SMALL = settings(FUZZ, max_examples=8)
# The key is the test's to send: no generated (or deliberately removed) Authorization headers.
# NUL bytes in generated strings stay on (schemathesis' default, said here so it is not turned off by accident).
CONFIG = SchemathesisConfig.from_dict({"generation": {"with-security-parameters": False, "deterministic": not EXPLORE,
                                                      "allow-x00": True}})
schema = schemathesis.openapi.from_dict(copy.deepcopy(openapi_document()), config=CONFIG)


def checks_for(case: schemathesis.Case) -> list:
    """Invalid parameters must be refused too. Not invalid bodies: forms send text, so the API reads bodies with
    pydantic's lax coercion on purpose ("2" is 2, 0 is false), which the document's JSON types cannot express."""
    return CHECKS if case.body is not NOT_SET else [*CHECKS, negative_data_rejection]


def use_real_resources(case: schemathesis.Case, api: FuzzApi) -> None:
    """Point the case at a job / batch of the caller, so the handlers past the 404 get fuzzed too."""
    params = case.path_parameters or {}
    if "job_id" in params:
        params["job_id"] = api.new_job()
    if "batch_id" in params:
        params["batch_id"] = api.new_batch()
    if "name" in params:
        params["name"] = ARTIFACT


@schema.parametrize()
@schema.given(real_ids=st.booleans())
@FUZZ
def test_operation_conforms_to_the_document(case: schemathesis.Case, real_ids: bool, fuzz_api: FuzzApi) -> None:
    if real_ids:
        use_real_resources(case, fuzz_api)
    case.headers = {**(case.headers or {}), **fuzz_api.headers}
    case.call_and_validate(app=fuzz_api.app, checks=checks_for(case))


@pytest.mark.parametrize("authorization", [None, "Bearer f3d_not-a-key", "Basic dXNlcjpwdw=="],
                         ids=["no-key", "bad-key", "not-bearer"])
@schema.parametrize()
@SMALL
def test_without_a_valid_key_protected_operations_answer_401(case: schemathesis.Case, authorization: str | None,
                                                             fuzz_api: FuzzApi) -> None:
    headers = dict(case.headers or {})
    headers.pop("Authorization", None)
    if authorization:
        headers["Authorization"] = authorization
    case.headers = headers
    response = case.call(app=fuzz_api.app)
    case.validate_response(response, checks=CHECKS)
    if case.path not in PUBLIC_PATHS:
        assert response.status_code == 401, (case.method, case.path, response.status_code, response.text)
        assert response.json()["code"] == "unauthorized"


UPLOADS = [("/v1/jobs", "image", (202, 415)), ("/v1/batches/{batch_id}/items", "image", (201,)),
           ("/v1/batches", "archive", (400, 415, 422))]


@pytest.mark.parametrize("path, field, allowed", UPLOADS, ids=[path for path, _, _ in UPLOADS])
@given(data=st.binary(max_size=4096))
@FUZZ
def test_garbage_upload_bytes_get_a_typed_4xx(path: str, field: str, allowed: tuple[int, ...], data: bytes,
                                               fuzz_api: FuzzApi) -> None:
    """schemathesis sends real image samples for `format: binary` most of the time; this sends arbitrary bytes.
    A non-image is refused (415, an empty file too) for a job, and fails its own item (201, item failed) in a batch."""
    path_parameters = {"batch_id": fuzz_api.new_batch()} if "{batch_id}" in path else None
    case = schema[path]["POST"].Case(body={field: data}, media_type="multipart/form-data",
                                     path_parameters=path_parameters, headers=fuzz_api.headers)
    response = case.call(app=fuzz_api.app)
    case.validate_response(response, checks=CHECKS)
    assert response.status_code in allowed, (response.status_code, response.text)
    if response.status_code == 202:
        assert sniff_image_type(data) is not None, "a job was queued for bytes that are not an image"
    if response.status_code == 201:
        added = response.json()
        assert (added["state"] == "failed") == (sniff_image_type(data) is None), added


def test_a_form_part_without_a_name_is_refused_not_a_crash(fuzz_api: FuzzApi) -> None:
    """Found by this fuzzing: werkzeug names such a part None, and sorting the unknown field names crashed (500)."""
    image = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n' + fuzz_api.photo
    body = image + b'\r\n--b\r\nContent-Disposition: form-data\r\n\r\n{}\r\n--b--\r\n'
    response = fuzz_api.app.test_client().post("/v1/jobs", data=body, headers=fuzz_api.headers,
                                               content_type="multipart/form-data; boundary=b")
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert "(unnamed)" in response.get_json()["detail"]
