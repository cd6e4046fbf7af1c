"""Request bodies of the HTTP API: the JSON bodies the handlers validate (BatchCreate, BatchItemIn, UrlSubmission)
and the multipart forms, described for the OpenAPI document (the handlers read forms field by field), plus the
fingerprint that recognises a replayed submit."""
from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from face3d.shared.schema import BatchItemIn, JobOptions


def request_fingerprint(image_sha256: str, engine: str, options: dict[str, Any]) -> str:
    """Same image + same engine + same options => same fingerprint (idempotent retries are recognised)."""
    canonical = json.dumps({"engine": engine, "options": options}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{image_sha256}\n{canonical}".encode()).hexdigest()


def _form_field(extra: dict[str, Any] | None = None) -> Callable[[dict[str, Any]], None]:
    """JSON-schema fixer for an optional multipart field: a form part is either sent (as text or a file) or left
    out; there is no null in multipart/form-data, so the schema is the non-null branch, without a default."""

    def fix(schema: dict[str, Any]) -> None:
        branches = [branch for branch in schema.pop("anyOf", []) if branch.get("type") != "null"]
        schema.update(branches[0] if branches else {})
        schema.pop("default", None)
        schema.update(extra or {})

    return fix


_IMAGE_PART = {"type": "string", "format": "binary", "contentMediaType": "image/*"}


class SubmitForm(BaseModel):
    """multipart/form-data body of POST /v1/jobs (documentation only: the API reads the form directly). Send exactly
    one of ``image`` and ``image_url``; JobOptions fields may also be sent as form fields of their own."""

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["image"]}, {"required": ["image_url"]}]})

    image: bytes | None = Field(None, json_schema_extra=_form_field(_IMAGE_PART),
                                description="The photo (JPEG, PNG, GIF, WebP, BMP, TIFF).")
    image_url: str | None = Field(None, min_length=1, max_length=2048, json_schema_extra=_form_field(),
                                  description="http(s) URL of the photo, instead of image.")
    options: str | None = Field(None, json_schema_extra=_form_field(),
                                description="JSON object of JobOptions; the fields may also be sent one by one.")


class UrlSubmission(BaseModel):
    """application/json body of POST /v1/jobs that names the photo by URL instead of uploading it (the form field
    ``image_url`` does the same in multipart/form-data). The API fetches it: http(s) only, public addresses only
    (checked after DNS resolution, on every redirect), at most MAX_UPLOAD_BYTES within IMAGE_URL_TIMEOUT_S."""

    model_config = ConfigDict(extra="forbid")

    image_url: str = Field(min_length=1, max_length=2048, description="http(s) URL of the photo.")
    options: JobOptions | None = None


class BatchArchiveForm(BaseModel):
    """multipart/form-data body of POST /v1/batches: a zip whose every file is one item (documentation only)."""

    archive: bytes = Field(json_schema_extra={"format": "binary", "contentMediaType": "application/zip"},
                           description="Zip archive of photos, at most MAX_ARCHIVE_BYTES.")
    options: str | None = Field(None, json_schema_extra=_form_field(),
                                description="JSON object of JobOptions, shared by every item.")
    name: str | None = Field(None, max_length=255, json_schema_extra=_form_field())


class BatchItemForm(BaseModel):
    """multipart/form-data body of POST /v1/batches/{batch_id}/items (documentation only)."""

    image: bytes = Field(json_schema_extra=_IMAGE_PART)
    name: str | None = Field(None, json_schema_extra=_form_field(),
                             description="Item name, unique in the batch (default: the file name).")


# Not both items and s3_prefix (neither: an empty batch).
_NOT_BOTH = {"not": {"required": ["items", "s3_prefix"],
                     "properties": {"items": {"type": "array"}, "s3_prefix": {"type": "string"}}}}


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_NOT_BOTH)

    items: list[BatchItemIn] | None = Field(None, description="Photos to add; omit for an empty batch that "
                                                              "receives items through POST /v1/batches/{id}/items.")
    s3_prefix: str | None = Field(None, description="s3://bucket/prefix: every object under it is an item.")
    options: JobOptions = Field(default_factory=JobOptions)
    name: str | None = Field(None, max_length=255)

    @model_validator(mode="after")
    def _one_source(self) -> "BatchCreate":
        if self.items is not None and self.s3_prefix is not None:
            raise ValueError("give 'items' or 's3_prefix', not both")
        return self
