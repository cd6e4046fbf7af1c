"""What `face3d ingest` reads: the items of a folder (recursively), a .zip, a JSONL manifest or one file. Files of a
folder or zip that are not photos by their bytes are left out and named, so a README beside the photos is not a
failed "photo"."""
from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from face3d.shared.errors import ErrorCode, Face3dError
from face3d.shared.schema import SNIFF_BYTES, images_in, sniff_image_type


@dataclass(frozen=True)
class SourceItem:
    """One input: its name in the results, and either a way to read its bytes or a reference the server reads."""

    name: str
    read: Callable[[], bytes] | None = None
    url: str | None = None
    key: str | None = None


def is_s3(source: str) -> bool:
    return source.startswith("s3://")


def iter_items(source: str, skipped: list[str] | None = None) -> Iterator[SourceItem]:
    """The items of a local source: a folder (recursively), a .zip, a .jsonl manifest, or a single file. Files of
    a folder or zip whose bytes are not a photo are left out, their names appended to ``skipped``."""
    path = Path(source)
    skipped = [] if skipped is None else skipped
    if path.is_dir():
        yield from _folder_items(path, skipped)
    elif path.suffix.lower() == ".zip":
        yield from _zip_items(path, skipped)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        yield from _manifest_items(path)
    elif path.is_file():
        yield SourceItem(path.name, read=path.read_bytes)
    else:
        raise Face3dError(f"{source} is not a folder, .zip, .jsonl manifest, file or s3:// prefix",
                          ErrorCode.INVALID_REQUEST)


def _folder_items(folder: Path, skipped: list[str]) -> Iterator[SourceItem]:
    photos, others = images_in([folder])
    skipped.extend(other.relative_to(folder).as_posix() for other in others)
    for path in photos:
        yield SourceItem(path.relative_to(folder).as_posix(), read=path.read_bytes)


def _zip_items(path: Path, skipped: list[str]) -> Iterator[SourceItem]:
    with zipfile.ZipFile(path) as archive:
        names = [info.filename for info in archive.infolist()
                 if not info.is_dir() and "__MACOSX" not in info.filename.split("/")]
        photos = [name for name in names if _zip_entry_is_image(archive, name)]
    skipped.extend(name for name in names if name not in set(photos))
    for name in photos:
        yield SourceItem(name, read=lambda name=name: _read_zip_entry(path, name))


def _zip_entry_is_image(archive: zipfile.ZipFile, name: str) -> bool:
    try:
        with archive.open(name) as entry:
            return sniff_image_type(entry.read(SNIFF_BYTES)) is not None
    except (zipfile.BadZipFile, OSError, RuntimeError):   # RuntimeError: an encrypted entry
        return True             # uploaded, so it fails its own line with the reason instead of vanishing


def _read_zip_entry(path: Path, name: str) -> bytes:
    with zipfile.ZipFile(path) as archive:
        return archive.read(name)


def _manifest_items(path: Path) -> Iterator[SourceItem]:
    """Lines like {"path": "photos/a.jpg"} (relative to the manifest), {"url": "s3://b/k"} or {"key": "uploads/k"},
    each with an optional "name". A broken line becomes an item that fails with the reason."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                yield _manifest_item(path.parent, number, line)


def _manifest_item(base: Path, number: int, line: str) -> SourceItem:
    try:
        entry = json.loads(line)
        if not isinstance(entry, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        return SourceItem(f"line {number}", read=_raiser(f"manifest line {number} is not valid JSON: {exc}"))
    name = entry.get("name")
    if entry.get("path"):
        file = base / entry["path"]
        return SourceItem(str(name or entry["path"]), read=file.read_bytes)
    if entry.get("url") or entry.get("key"):
        reference = entry.get("url") or entry.get("key")
        return SourceItem(str(name or reference.rsplit("/", 1)[-1]), url=entry.get("url"), key=entry.get("key"))
    return SourceItem(str(name or f"line {number}"), read=_raiser(f"manifest line {number} has no path, url or key"))


def _raiser(message: str) -> Callable[[], bytes]:
    def read() -> bytes:
        raise Face3dError(message, ErrorCode.INVALID_REQUEST)
    return read


def read_item(item: SourceItem) -> bytes:
    try:
        return item.read()  # type: ignore[misc]
    except OSError as exc:
        raise Face3dError(f"cannot read {item.name}: {exc.strerror or exc}", ErrorCode.INVALID_REQUEST) from exc
    except zipfile.BadZipFile as exc:
        raise Face3dError(f"cannot unpack {item.name}: {exc}", ErrorCode.INVALID_REQUEST) from exc
