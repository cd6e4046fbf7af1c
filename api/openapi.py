"""The OpenAPI 3.1 document, generated from the pydantic models the handlers use.

Every route the app serves under /v1, plus /healthz and /readyz, is described here (api/openapi_paths.py);
tests/api/test_openapi.py walks ``app.url_map`` and fails on a route or method missing here, so none is forgotten.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic.json_schema import models_json_schema

from face3d.api import forms
from face3d.api.health import Health, Readiness
from face3d.api.openapi_paths import BEARER, HEADERS, REF, paths
from face3d.api.problems import Problem
from face3d.api.web import Limits
from face3d.shared import schema

SERIALIZED = (schema.Job, schema.JobList, Problem, Health, Readiness, schema.WebhookDeliveryList, schema.WebhookEvent,
              schema.BatchItemAdded, schema.BatchResultLine, schema.BatchView, schema.BatchList, Limits)
VALIDATED = (schema.JobOptions, forms.SubmitForm, forms.UrlSubmission, forms.BatchCreate, forms.BatchItemIn,
             forms.BatchArchiveForm, forms.BatchItemForm)
DESCRIPTION = (
    "Send face photos, get textured 3D faces back. Jobs are asynchronous: POST a photo (or its URL), then follow "
    "the job (or send `Prefer: wait=N`). Batches take many photos at once and stream one JSON line per photo. "
    "Every error is RFC 9457 `application/problem+json` with a stable `code`. With AUTH_MODE=on every route except "
    "the health checks and this document needs `Authorization: Bearer <API key>`; with AUTH_MODE=off keys are "
    "ignored and no 401/429 is sent."
)


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    _, defs = models_json_schema(
        [(model, "serialization") for model in SERIALIZED] + [(model, "validation") for model in VALIDATED],
        ref_template=REF,
    )
    for model in VALIDATED:
        _refuse_control_characters(defs.get("$defs", {}).get(model.__name__, {}))
    return {
        "openapi": "3.1.0",
        "info": {"title": "face3d API", "version": "1.0.0", "description": DESCRIPTION},
        "security": [{BEARER: []}],
        "tags": [{"name": "jobs"}, {"name": "batches"}, {"name": "health"}],
        "paths": paths(),
        "webhooks": {"jobFinished": {"post": _webhook_operation()}},
        "components": {
            "schemas": defs.get("$defs", {}),
            "headers": HEADERS,
            "securitySchemes": {BEARER: {
                "type": "http", "scheme": "bearer", "bearerFormat": "f3d_...",
                "description": "An API key made with `face3d keys create` (only checked with AUTH_MODE=on)."}},
        },
    }


# What api/edge.py refuses in every string of a request: C0 and C1 controls, DEL (surrogates cannot be sent).
NO_CONTROL_CHARACTERS = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"


def _refuse_control_characters(schema: Any) -> None:
    """Say so in the document: each free-text string of a request body gets the pattern the edge enforces."""
    if isinstance(schema, list):
        for item in schema:
            _refuse_control_characters(item)
    elif isinstance(schema, dict):
        if schema.get("type") == "string" and not {"enum", "const", "format", "pattern"} & set(schema):
            schema["pattern"] = NO_CONTROL_CHARACTERS
        for key, value in schema.items():
            if key not in ("enum", "const", "default", "examples"):
                _refuse_control_characters(value)


def _webhook_operation() -> dict[str, Any]:
    return {
        "operationId": "jobFinished",
        "summary": "Sent to a job's webhook_url when it finishes",
        "description": "Signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature headers); "
                       "retried with backoff until the receiver answers 2xx. Attempts: "
                       "GET /v1/jobs/{job_id}/webhook-deliveries.",
        "security": [],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": REF.format(model="WebhookEvent")}}}},
        "responses": {"2XX": {"description": "Delivered"}},
    }
