"""Where a batch's items come from, as streams of (NewItem, why it already failed): a JSON manifest of item
references, a zip archive (walked entry by entry, every entry's real size counted as it is unpacked), an S3 prefix
(listed page by page; the objects are read by the batch-item task, not here). Each stream starts at an index, so an
expansion resumes where it stopped; item names are made unique over the whole source either way.

The zip checks come in two parts: ``check_archive`` reads only the central directory (entry count, declared sizes,
overlapping or duplicate entries) before anything is stored; ``archive_items`` never trusts those headers and
counts the bytes it really unpacks against the same bounds.
"""
from __future__ import annotations

import hashlib
import posixpath
import zipfile
from typing import Any, Iterator
from urllib.parse import urlparse

from face3d.shared.batches import NewItem
from face3d.shared.config import Settings
from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.imaging import check_image_bytes
from face3d.shared.schema import BatchItemIn, UniqueNames, storable_name
from face3d.shared.storage import Storage, input_key, make_s3_client, s3_error_code

UPLOADS_PREFIX = "uploads/"
READ_CHUNK = 256 * 1024
LOCAL_HEADER_BYTES = 30         # the fixed part of a zip local file header
Pending = tuple[NewItem, Face3dError | None]      # an item, and why it already failed (None: it goes to a worker)


# ---------------------------------------------------------------- zip archives


def open_archive(stream: Any) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, ValueError):
        raise Face3dError("'archive' is not a zip file", ErrorCode.UNSUPPORTED_MEDIA_TYPE) from None


def check_archive(settings: Settings, archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The entries that are items, once the central directory is within bounds: at most MAX_ARCHIVE_ENTRIES
    entries, MAX_ARCHIVE_UNCOMPRESSED_BYTES declared in all, and no two entries sharing local data."""
    infos = archive.infolist()
    if len(infos) > settings.max_archive_entries:
        raise Face3dError(f"the zip lists {len(infos)} entries; at most {settings.max_archive_entries} are accepted",
                          ErrorCode.ARCHIVE_TOO_LARGE)
    declared = sum(info.file_size for info in infos)
    if declared > settings.max_archive_uncompressed_bytes:
        raise Face3dError(f"the zip unpacks to {declared} bytes; at most {settings.max_archive_uncompressed_bytes} "
                          "are accepted", ErrorCode.ARCHIVE_TOO_LARGE)
    _refuse_overlaps(archive, infos)
    entries = [info for info in infos if is_photo_candidate(info.filename) and not info.is_dir()]
    if not entries:
        raise Face3dError("the zip archive holds no files", ErrorCode.VALIDATION_FAILED)
    return entries


def _refuse_overlaps(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    """Each entry's local header and data must end before the next entry (in file order) starts, and the last
    before the central directory: several directory entries pointing at one local entry is the "overlap" bomb."""
    ordered = sorted(infos, key=lambda info: info.header_offset)
    ends = [info.header_offset for info in ordered[1:]] + [getattr(archive, "start_dir", None)]
    for info, next_start in zip(ordered, ends):
        end = info.header_offset + LOCAL_HEADER_BYTES + len(_raw_name(info)) + info.compress_size
        if next_start is not None and end > next_start:
            raise Face3dError(f"zip entry {storable_name(info.filename)!r} overlaps another entry's data (duplicate "
                              "or overlapping entries are refused)", ErrorCode.ARCHIVE_INVALID)


def _raw_name(info: zipfile.ZipInfo) -> bytes:
    try:
        return info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
    except UnicodeEncodeError:
        return info.orig_filename.encode("utf-8")


def archive_items(settings: Settings, storage: Storage, archive: zipfile.ZipFile, start: int = 0,
                  unpacked: int = 0) -> Iterator[Pending]:
    """Entries from index ``start``, each stored as its item's input. ``unpacked``: bytes the entries before
    ``start`` already took of MAX_ARCHIVE_UNCOMPRESSED_BYTES."""
    names, budget = UniqueNames(), settings.max_archive_uncompressed_bytes - unpacked
    entries = [info for info in archive.infolist() if is_photo_candidate(info.filename) and not info.is_dir()]
    over_budget: Face3dError | None = None      # once the real total passes the bound, every later entry fails
    for index, info in enumerate(entries):
        item = NewItem(name=names(storable_name(info.filename)), input_key="")
        if index < start:
            continue
        if over_budget is not None:
            yield item, over_budget
            continue
        try:
            data = read_entry(settings, archive, info, budget)
        except Face3dError as exc:
            over_budget = exc if exc.code is ErrorCode.ARCHIVE_TOO_LARGE else None
            yield item, exc
            continue
        budget -= len(data)
        yield stored_item(settings, storage, item, data)


def read_entry(settings: Settings, archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """An entry's bytes, unpacked chunk by chunk and counted: refused past MAX_UPLOAD_BYTES, past its ratio, past
    the archive's remaining ``budget`` (the whole rest of the archive is refused then), or when its real size is
    not the one its header declares."""
    name = storable_name(info.filename)
    limit = min(settings.max_upload_bytes, settings.max_archive_entry_ratio * max(info.compress_size, 1))
    data = bytearray()
    try:
        with archive.open(info) as entry:
            while chunk := entry.read(READ_CHUNK):
                data += chunk
                if len(data) > budget:
                    raise Face3dError(f"the zip unpacks to more than {settings.max_archive_uncompressed_bytes} "
                                      f"bytes (at {name}); the rest of it is refused", ErrorCode.ARCHIVE_TOO_LARGE)
                if len(data) > limit:
                    raise Face3dError(f"{name} unpacks past {limit} bytes (at most {settings.max_upload_bytes}, or "
                                      f"{settings.max_archive_entry_ratio}x its packed size)",
                                      ErrorCode.ARCHIVE_ENTRY_REFUSED)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError, ValueError) as exc:
        raise Face3dError(f"cannot unpack {name}: {exc}", ErrorCode.ARCHIVE_ENTRY_REFUSED) from None
    if len(data) != info.file_size:
        raise Face3dError(f"{name} holds {len(data)} bytes but its header says {info.file_size}",
                          ErrorCode.ARCHIVE_ENTRY_REFUSED)
    return bytes(data)


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


# ---------------------------------------------------------------- JSON manifests (item references)


ITEM_FIELDS = frozenset({"key", "url", "name"})


def check_item_shapes(items: list[Any]) -> None:
    """The request's own check of a manifest, fast enough for 400,000 items (well under a second): each item is
    an object with exactly one of ``key`` and ``url`` and only string fields. Whether a reference may be read
    is the worker's check, item by item."""
    for index, raw in enumerate(items):
        if type(raw) is not dict or not raw.keys() <= ITEM_FIELDS:
            _bad_item(index, f"an object with 'key' or 'url' and an optional 'name' ({', '.join(sorted(ITEM_FIELDS))})")
        key, url, name = raw.get("key"), raw.get("url"), raw.get("name")
        if (key is None) == (url is None):
            _bad_item(index, "give exactly one of 'key' or 'url'")
        if type(key or url) is not str or (name is not None and type(name) is not str):
            _bad_item(index, "'key', 'url' and 'name' are strings")
        if name is not None and len(name) > 1024:
            _bad_item(index, "'name' is at most 1024 characters")


def _bad_item(index: int, message: str) -> None:
    raise Face3dError(f"body.items[{index}]: {message}", ErrorCode.VALIDATION_FAILED, loc=["body", "items", index])


def manifest_items(settings: Settings, raw_items: Any, start: int = 0) -> Iterator[Pending]:
    """Items of a stored manifest from index ``start``; an invalid reference fails its own item."""
    if not isinstance(raw_items, list):
        raise Face3dError("'items' must be a list of {key|url, name} objects", ErrorCode.VALIDATION_FAILED)
    names = UniqueNames()
    for index, raw in enumerate(raw_items):
        try:
            pending: Pending = (reference_item(settings, BatchItemIn.model_validate(raw), names), None)
        except Face3dError as exc:
            pending = NewItem(name=names(_raw_item_name(raw, index)), input_key=""), exc
        except ValueError as exc:       # pydantic's ValidationError
            message = f"item {index + 1}: {str(exc).splitlines()[-1].strip()}"
            pending = NewItem(name=names(_raw_item_name(raw, index)), input_key=""), Face3dError(
                message, ErrorCode.VALIDATION_FAILED)
        if index >= start:
            yield pending


def _raw_item_name(raw: Any, index: int) -> str:
    """The name of an invalid reference: its own, else its key's or URL's file name, else its position."""
    fields = raw if isinstance(raw, dict) else {}
    for name in (fields.get("name"), *(posixpath.basename(str(fields.get(k) or "")) for k in ("key", "url"))):
        if isinstance(name, str) and name:
            return storable_name(name)
    return f"item {index + 1}"


def reference_item(settings: Settings, item: BatchItemIn, names: UniqueNames) -> NewItem:
    if item.key is not None:
        key = item.key.lstrip("/")
        if not key.startswith(UPLOADS_PREFIX) or ".." in key.split("/"):
            raise Face3dError(f"item key {storable_name(item.key)!r} must be under {UPLOADS_PREFIX}",
                              ErrorCode.VALIDATION_FAILED)
        return NewItem(name=names(storable_name(item.name or posixpath.basename(key))), input_key=key)
    bucket, key = s3_source(settings, item.url or "", is_prefix=False)
    return NewItem(name=names(storable_name(item.name or posixpath.basename(key))), input_key=f"s3://{bucket}/{key}")


# ---------------------------------------------------------------- S3 prefixes


def check_prefix(settings: Settings, url: str) -> None:
    """A missing bucket or an empty prefix is the request's error, found before the batch is made."""
    bucket, prefix = s3_source(settings, url, is_prefix=True)
    client = make_s3_client(settings.s3_endpoint_url, settings.s3_region)
    try:
        found = client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1).get("KeyCount", 0)
    except Exception as exc:  # noqa: BLE001 - botocore errors: missing bucket, no access, unreachable
        raise Face3dError(f"cannot list s3://{bucket}/{prefix}: {s3_error_code(exc)}",
                          ErrorCode.VALIDATION_FAILED) from exc
    if not found:
        raise Face3dError(f"no objects under s3://{bucket}/{prefix}", ErrorCode.VALIDATION_FAILED)


def prefix_items(settings: Settings, url: str, start: int = 0) -> Iterator[Pending]:
    """The objects under an ``s3://bucket/prefix``, listed page by page, from index ``start``."""
    bucket, prefix = s3_source(settings, url, is_prefix=True)
    client = make_s3_client(settings.s3_endpoint_url, settings.s3_region)
    names, index = UniqueNames(), 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            relative = key[len(prefix):].lstrip("/") or posixpath.basename(key)
            if key.endswith("/") or not is_photo_candidate(relative):
                continue
            item = NewItem(name=names(storable_name(relative)), input_key=f"s3://{bucket}/{key}",
                           input_size=int(obj.get("Size", 0)))
            if index >= start:
                yield item, None
            index += 1


def s3_source(settings: Settings, url: str, *, is_prefix: bool) -> tuple[str, str]:
    """(bucket, key or prefix) of an s3:// URL the service may read; the service's own files are off limits
    except its uploads/ folder."""
    parsed = urlparse(url)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not bucket or (not key and not is_prefix):
        raise Face3dError(f"{storable_name(url)!r} is not an s3://bucket/{'prefix' if is_prefix else 'key'} URL",
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


def is_photo_candidate(path: str) -> bool:
    """Skips only system clutter (macOS resource forks, hidden files); anything else is an item, and a non-image
    fails its own item with a reason."""
    parts = path.split("/")
    return "__MACOSX" not in parts and not parts[-1].startswith(".")
