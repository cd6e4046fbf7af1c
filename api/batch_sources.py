"""The parts of a batch's sources that come with the request: a single item upload, and storing an uploaded zip
(werkzeug spooled it to a temporary file) as the batch's source. Everything else: shared/batch_sources.py."""
from __future__ import annotations

import tempfile
from pathlib import Path

from flask import request
from werkzeug.datastructures import FileStorage

from face3d.shared.batch_sources import Pending, check_prefix, open_archive, check_archive, stored_item  # noqa: F401
from face3d.shared.batches import NewItem
from face3d.shared.config import Settings
from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.schema import storable_name
from face3d.shared.storage import Storage


def uploaded_item(settings: Settings, storage: Storage) -> Pending:
    """The multipart ``image`` (+ optional ``name``) of POST /v1/batches/{id}/items."""
    upload = request.files.get("image")
    if upload is None:
        raise Face3dError("send the photo as a multipart/form-data file field named 'image'", ErrorCode.INVALID_REQUEST)
    name = request.form.get("name") or upload.filename or "photo"
    data = upload.read(settings.max_upload_bytes + 1)
    return stored_item(settings, storage, NewItem(name=storable_name(name), input_key=""), data)


def store_upload(storage: Storage, key: str, upload: FileStorage) -> None:
    """Store an uploaded file under ``key`` from disk (never whole in memory)."""
    upload.stream.seek(0)
    with tempfile.TemporaryDirectory(prefix="face3d-upload-") as folder:
        path = Path(folder) / "source"
        upload.save(path)
        storage.put_file(key, path, content_type="application/zip")
