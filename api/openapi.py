"""The OpenAPI 3.1 document, generated from the pydantic models the handlers use."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from api import schemas

REF = "#/components/schemas/{model}"
PROBLEM = "application/problem+json"


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(m, "serialization") for m in (schemas.Job, schemas.JobList, schemas.Problem, schemas.Health,
                                        schemas.Readiness)]
        + [(m, "validation") for m in (schemas.JobOptions, schemas.SubmitForm)],
        ref_template=REF,
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "face3d API",
            "version": "1.0.0",
            "description": "Send face photos, get textured 3D faces back. Jobs are asynchronous: POST a photo, "
                           "then follow the job (or send `Prefer: wait=N`). Every error is RFC 9457 problem+json.",
        },
        "paths": _paths(),
        "components": {"schemas": defs.get("$defs", {})},
    }


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description,
                                "content": {"application/json": {"schema": _ref(model)}}}
    if headers:
        response["headers"] = headers
    return response


def _problems(*statuses: int) -> dict[str, Any]:
    return {str(s): {"description": "Problem details", "content": {PROBLEM: {"schema": _ref(schemas.Problem)}}}
            for s in statuses}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


_PREFER = {"name": "Prefer", "in": "header", "required": False, "schema": {"type": "string"},
           "description": "`wait=N` (N <= 60): hold the answer until the job finishes or N seconds pass."}
_JOB_ID = _path_param("job_id", "Job id")


def _paths() -> dict[str, Any]:
    return {
        "/v1/jobs": {
            "post": {
                "operationId": "submitJob",
                "summary": "Submit a photo",
                "parameters": [
                    _PREFER,
                    {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"},
                     "description": "Replaying a key with the same body returns the same job; "
                                    "with a different body: 409."},
                ],
                "requestBody": {"required": True, "content": {"multipart/form-data": {
                    "schema": _ref(schemas.SubmitForm)}}},
                "responses": {
                    "202": _json(schemas.Job, "Accepted (queued or still running)",
                                 {"Location": _header("URL of the job")}),
                    "200": _json(schemas.Job, "Finished within the Prefer wait, or an idempotent replay of a "
                                              "finished job"),
                    **_problems(400, 409, 413, 415, 422, 503),
                },
            },
            "get": {
                "operationId": "listJobs",
                "summary": "List jobs, newest first",
                "parameters": [
                    {"name": "state", "in": "query", "schema": {"type": "string", "enum": [s.value for s in
                                                                                            schemas.JobState]}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100}},
                    {"name": "cursor", "in": "query", "schema": {"type": "string"},
                     "description": "next_cursor of the previous page"},
                ],
                "responses": {"200": _json(schemas.JobList, "A page of jobs",
                                           {"Link": _header('rel="next" link to the next page')}),
                              **_problems(400, 422)},
            },
        },
        "/v1/jobs/{job_id}": {
            "get": {"operationId": "getJob", "summary": "Get a job", "parameters": [_JOB_ID, _PREFER],
                    "responses": {"200": _json(schemas.Job, "The job"), **_problems(404)}},
            "delete": {"operationId": "deleteJob", "summary": "Delete a job and its files (a queued job is "
                                                              "canceled first; a running one answers 409)",
                       "parameters": [_JOB_ID],
                       "responses": {"204": {"description": "Deleted"}, **_problems(404, 409)}},
        },
        "/v1/jobs/{job_id}/cancel": {
            "post": {"operationId": "cancelJob", "summary": "Cancel a job", "parameters": [_JOB_ID],
                     "responses": {"202": _json(schemas.Job, "Canceled, or cancel requested while it runs"),
                                   **_problems(404, 409)}},
        },
        "/v1/jobs/{job_id}/artifacts/{name}": {
            "get": {"operationId": "getArtifact", "summary": "Download a result file",
                    "parameters": [_JOB_ID, _path_param("name", "Artifact name, e.g. face_0.glb")],
                    "responses": {"200": {"description": "The file (local storage)",
                                          "content": {"application/octet-stream": {
                                              "schema": {"type": "string", "contentMediaType":
                                                         "application/octet-stream"}}}},
                                  "302": {"description": "Redirect to a presigned object-storage URL",
                                          "headers": {"Location": _header("presigned URL")}},
                                  **_problems(404)}},
        },
        "/healthz": {"get": {"operationId": "healthz", "summary": "Liveness",
                             "responses": {"200": _json(schemas.Health, "Alive")}}},
        "/readyz": {"get": {"operationId": "readyz", "summary": "Readiness of database, broker and storage",
                            "responses": {"200": _json(schemas.Readiness, "Ready"),
                                          "503": _json(schemas.Readiness, "A dependency is down")}}},
        "/v1/openapi.json": {"get": {"operationId": "openapi", "summary": "This document",
                                     "responses": {"200": {"description": "OpenAPI 3.1 document",
                                                           "content": {"application/json": {}}}}}},
    }
