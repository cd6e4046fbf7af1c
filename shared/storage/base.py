"""The Storage protocol and the key layout shared by every backend."""
from __future__ import annotations

import mimetypes
import re
from pathlib import Path
from datetime import datetime
from typing import BinaryIO, Iterator, Protocol

from face3d.shared.errors import ErrorCode, Face3dError

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXTRA_TYPES = {".glb": "model/gltf-binary", ".obj": "model/obj", ".mtl": "model/mtl", ".json": "application/json",
                ".stl": "model/stl", ".3mf": "model/3mf", ".ply": "application/octet-stream",
                ".usdz": "model/vnd.usdz+zip"}
MAX_NAME = 120


class Storage(Protocol):
    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None: ...
    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def copy(self, source_key: str, target_key: str) -> None: ...
    def list_objects(self, prefix: str = "") -> Iterator[tuple[str, datetime]]: ...
    def delete_prefix(self, prefix: str) -> int: ...
    def url_for(self, key: str, filename: str | None = None) -> str | None: ...
    def open_stream(self, key: str) -> BinaryIO: ...
    def check(self) -> None: ...


def sanitize_name(name: str, default: str = "upload") -> str:
    """A file name safe as one key segment: no folders, no dot-only names, a limited alphabet and length."""
    base = re.split(r"[\\/]", name or "")[-1]
    cleaned = _UNSAFE.sub("_", base).strip("._")[-MAX_NAME:]
    return cleaned or default


def job_prefix(job_id: str) -> str:
    return f"jobs/{sanitize_name(job_id, 'job')}/"


def input_key(job_id: str, name: str) -> str:
    return f"{job_prefix(job_id)}input/{sanitize_name(name)}"


def output_key(job_id: str, name: str) -> str:
    return f"{job_prefix(job_id)}output/{sanitize_name(name, 'artifact')}"


def validate_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts[:-1]) or parts[-1] in (".", ".."):
        raise Face3dError(f"invalid storage key {key!r}", ErrorCode.INVALID_REQUEST)
    return key


def content_type_for(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return _EXTRA_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"
