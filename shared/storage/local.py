"""Storage in a local folder: the embedded default. Downloads are streamed by the API (url_for returns None)."""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from datetime import datetime, timezone
from typing import BinaryIO, Iterator

from face3d.shared.errors import NotFound, StorageUnavailable
from face3d.shared.storage.base import validate_key


class LocalStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        path = self._path(key)
        staged: Path | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename, so a reader never sees half a file.
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".tmp-", delete=False) as handle:
                staged = Path(handle.name)
                handle.write(data)
            os.replace(staged, path)
        except OSError as exc:
            if staged is not None:
                staged.unlink(missing_ok=True)          # a full disk (ENOSPC) leaves no half-written file
            raise StorageUnavailable(f"cannot write {key}: {exc.strerror or exc}") from exc

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> None:
        """Hard-links ``path`` in when it is on the same file system (the worker's artifacts: no copy, and the
        caller deletes its own name right after), else copies it. Then renames, so a reader never sees half a file."""
        source, target = Path(path), self._path(key)
        if not source.is_file():
            raise FileNotFoundError(f"no file {source} to store")     # the caller's mistake, not the storage's
        staged = target.parent / f".tmp-{uuid.uuid4().hex}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _link_or_copy(source, staged)
            os.replace(staged, target)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            raise StorageUnavailable(f"cannot write {key}: {exc.strerror or exc}") from exc

    def copy(self, source_key: str, target_key: str) -> None:
        """A hard link where it can (no bytes copied): either name may be deleted without breaking the other."""
        source = self._path(source_key)
        if not source.is_file():
            raise NotFound(f"no stored object {source_key}")
        self.put_file(target_key, source)

    def get_bytes(self, key: str) -> bytes:
        with self.open_stream(key) as handle:
            return handle.read()

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with ``prefix``; returns how many files went."""
        folder, _, stem = prefix.rpartition("/")
        base = self.root / validate_key(folder) if folder else self.root
        if not base.is_dir():
            return 0
        removed = 0
        for entry in list(base.iterdir()):
            if not entry.name.startswith(stem):
                continue
            if entry.is_dir():
                removed += sum(1 for p in entry.rglob("*") if p.is_file())
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
                removed += 1
        return removed

    def list_objects(self, prefix: str = "") -> Iterator[tuple[str, datetime]]:
        """(key, last modified) of every file under ``prefix``, staging files (``.tmp-*``) included."""
        base = self.root / prefix.rstrip("/") if prefix else self.root
        for folder, _, files in os.walk(base):
            for name in files:
                path = Path(folder) / name
                try:
                    modified = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
                except FileNotFoundError:
                    continue
                yield path.relative_to(self.root).as_posix(), modified

    def url_for(self, key: str, filename: str | None = None) -> str | None:
        return None

    def open_stream(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except (FileNotFoundError, IsADirectoryError):
            raise NotFound(f"no stored object {key}") from None

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.root):
                pass
        except OSError as exc:
            raise StorageUnavailable(f"storage folder {self.root} is not writable: {exc.strerror or exc}") from exc

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"


_CANNOT_LINK = {errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EACCES}


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError as exc:
        if exc.errno not in _CANNOT_LINK:
            raise
        shutil.copyfile(source, target)
