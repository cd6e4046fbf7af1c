"""Where a batch's photos come from, turned into a stream of NewItem: a zip upload (walked entry by entry), an
S3 prefix (listed page by page; the objects are read by the worker, not here), item references (a key under
uploads/ or an s3:// URL) and single uploads. Nothing is held whole in memory."""
from __future__ import annotations

import hashlib
import posixpath
import zipfile
from typing import Iterator
from urllib.parse import urlparse

from flask import request
from werkzeug.datastructures import FileStorage

from face3d.api.forms import BatchItemIn
from face3d.shared.batches import NewItem
from face3d.shared.config import Settings
from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.imaging import check_image_bytes
from face3d.shared.schema import UniqueNames, clip_name
from face3d.shared.storage import Storage, input_key, make_s3_client, s3_error_code

UPLOADS_PREFIX = "uploads/"
Pending = tuple[NewItem, Face3dError | None]      # an item, and why it already failed (None: it goes to a worker)


def archive_entries(upload: FileStorage) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """The zip of an upload (werkzeug spooled it to a temporary file) and its entries that are items."""
    try:
        archive = zipfile.ZipFile(upload.stream)
    except (zipfile.BadZipFile, OSError):
        raise Face3dError("'archive' is not a zip file", ErrorCode.UNSUPPORTED_MEDIA_TYPE) from None
    entries = [info for info in archive.infolist() if _is_photo_candidate(info.filename) and not info.is_dir()]
    if not entries:
        archive.close()
        raise Face3dError("the zip archive holds no files", ErrorCode.VALIDATION_FAILED)
    return archive, entries


def zip_items(settings: Settings, storage: Storage, archive: zipfile.ZipFile,
              entries: list[zipfile.ZipInfo]) -> Iterator[Pending]:
    names = UniqueNames()
    limit = settings.max_upload_bytes
    for info in entries:
        item = NewItem(name=names(info.filename), input_key="")
        try:
            with archive.open(info) as entry:
                data = entry.read(limit + 1)        # bounded, whatever the header claims
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError) as exc:
            yield item, Face3dError(f"cannot unpack {info.filename}: {exc}", ErrorCode.INVALID_REQUEST)
            continue
        yield stored_item(settings, storage, item, data)


def uploaded_item(settings: Settings, storage: Storage) -> Pending:
    """The multipart ``image`` (+ optional ``name``) of POST /v1/batches/{id}/items."""
    upload = request.files.get("image")
    if upload is None:
        raise Face3dError("send the photo as a multipart/form-data file field named 'image'", ErrorCode.INVALID_REQUEST)
    name = request.form.get("name") or upload.filename or "photo"
    data = upload.read(settings.max_upload_bytes + 1)
    return stored_item(settings, storage, NewItem(name=clip_name(name), input_key=""), data)


def stored_item(settings: Settings, storage: Storage, item: NewItem, data: bytes) -> Pending:
    """Store an image's bytes as the item's input (hash known); a non-image fails its own item only."""
    try:
        media_type = check_image_bytes(data, settings.max_upload_bytes, name=item.name)
    except Face3dError as exc:
        return item, exc
    key = input_key(item.job_id, item.name)
    storage.put_bytes(key, data, content_type=media_type)
    return NewItem(name=item.name, input_key=key, input_size=len(data),
                   input_sha256=hashlib.sha256(data).hexdigest(), job_id=item.job_id), None


def reference_item(settings: Settings, item: BatchItemIn, names: UniqueNames) -> NewItem:
    if item.key is not None:
        key = item.key.lstrip("/")
        if not key.startswith(UPLOADS_PREFIX) or ".." in key.split("/"):
            raise Face3dError(f"item key {item.key!r} must be under {UPLOADS_PREFIX}", ErrorCode.VALIDATION_FAILED)
        return NewItem(name=names(item.name or posixpath.basename(key)), input_key=key)
    bucket, key = _s3_source(settings, item.url or "", is_prefix=False)
    return NewItem(name=names(item.name or posixpath.basename(key)), input_key=f"s3://{bucket}/{key}")


def prefix_items(settings: Settings, url: str) -> Iterator[NewItem]:
    """The objects under an ``s3://bucket/prefix`` the service may read; checked before the first item is asked
    for (a missing bucket or an empty prefix is the request's error), listed lazily after."""
    bucket, prefix = _s3_source(settings, url, is_prefix=True)
    client = make_s3_client(settings.s3_endpoint_url, settings.s3_region)
    try:
        found = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0)
    except Exception as exc:  # noqa: BLE001 - botocore errors: missing bucket, no access, unreachable
        raise Face3dError(f"cannot list s3://{bucket}/{prefix}: {s3_error_code(exc)}",
                          ErrorCode.VALIDATION_FAILED) from exc
    if not found:
        raise Face3dError(f"no objects under s3://{bucket}/{prefix}", ErrorCode.VALIDATION_FAILED)
    return _listed_items(client, bucket, prefix)


def _listed_items(client: object, bucket: str, prefix: str) -> Iterator[NewItem]:
    names = UniqueNames()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            relative = key[len(prefix):].lstrip("/") or posixpath.basename(key)
            if key.endswith("/") or not _is_photo_candidate(relative):
                continue
            yield NewItem(name=names(relative), input_key=f"s3://{bucket}/{key}", input_size=int(obj.get("Size", 0)))


def _s3_source(settings: Settings, url: str, *, is_prefix: bool) -> tuple[str, str]:
    """(bucket, key or prefix) of an s3:// URL the service may read; the service's own files are off limits
    except its uploads/ folder."""
    parsed = urlparse(url)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not bucket or (not key and not is_prefix):
        raise Face3dError(f"{url!r} is not an s3://bucket/{'prefix' if is_prefix else 'key'} URL",
                          ErrorCode.VALIDATION_FAILED)
    allowed = settings.batch_s3_buckets
    if "*" not in allowed and bucket not in allowed:
        raise Face3dError(f"bucket {bucket!r} is not one this service reads (BATCH_S3_BUCKETS)",
                          ErrorCode.VALIDATION_FAILED)
    own = settings.storage_backend == "s3" and bucket == settings.s3_bucket
    if own and not key.startswith(settings.s3_prefix + UPLOADS_PREFIX):
        raise Face3dError(f"in the service's own bucket only {settings.s3_prefix}{UPLOADS_PREFIX} may be read",
                          ErrorCode.VALIDATION_FAILED)
    return bucket, key


def _is_photo_candidate(path: str) -> bool:
    """Skips only system clutter (macOS resource forks, hidden files); anything else is an item, and a non-image
    fails its own item with a reason."""
    parts = path.split("/")
    return "__MACOSX" not in parts and not parts[-1].startswith(".")
