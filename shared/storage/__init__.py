"""Where inputs and artifacts live: one small interface, a local-folder backend and an S3 backend."""
from __future__ import annotations

from typing import TYPE_CHECKING

from face3d.shared.storage.base import Storage, content_type_for, input_key, job_prefix, output_key, validate_key
from face3d.shared.storage.local import LocalStorage
from face3d.shared.storage.s3 import S3Storage, make_s3_client, read_source, s3_error_code

if TYPE_CHECKING:
    from face3d.shared.config import Settings


def make_storage(settings: "Settings") -> Storage:
    if settings.storage_backend == "s3":
        client = make_s3_client(settings.s3_endpoint_url, settings.s3_region)
        public = settings.s3_public_endpoint_url
        presign_client = make_s3_client(public, settings.s3_region) if public else None
        return S3Storage(client, settings.s3_bucket, settings.s3_prefix, settings.presign_expiry_s, presign_client)
    return LocalStorage(settings.storage_dir)


__all__ = ["Storage", "LocalStorage", "S3Storage", "make_storage", "make_s3_client", "input_key", "output_key",
           "job_prefix", "content_type_for", "validate_key", "read_source", "s3_error_code"]
