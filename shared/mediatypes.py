"""Recognising a photo by its first bytes (magic numbers), never by its name: what the API accepts, what the worker
decodes, and what `face3d reconstruct` and `face3d ingest` pick from a folder. No dependency, so the client can use
it (through shared.schema)."""
from __future__ import annotations

from pathlib import Path

SUPPORTED_TYPES = "JPEG, PNG, GIF, WebP, BMP or TIFF"
SNIFF_BYTES = 12                # enough for every signature below
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def sniff_image_type(data: bytes) -> str | None:
    """The image media type of ``data``, or None when it is not a format the engines decode.

    HEIC/AVIF are recognised by nobody here on purpose: Pillow cannot decode them without an extra plugin,
    so accepting them would only move the failure into the worker.
    """
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, media_type in _SIGNATURES:
        if data.startswith(magic):
            return media_type
    return None


def is_image_file(path: Path) -> bool:
    """True when the file's first bytes are those of a supported image (False for unreadable files too)."""
    try:
        with path.open("rb") as file:
            return sniff_image_type(file.read(SNIFF_BYTES)) is not None
    except OSError:
        return False


def images_in(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(photos, skipped): the given files, and every file under the given folders (recursively, hidden ones left
    out), split by their bytes into supported photos and the rest. A file named explicitly is kept as given, so
    its own error is reported instead of a silent skip."""
    photos: list[Path] = []
    skipped: list[Path] = []
    for path in paths:
        if not path.is_dir():
            photos.append(path)
            continue
        for found in sorted(path.rglob("*")):
            if found.is_file() and not any(part.startswith(".") for part in found.relative_to(path).parts):
                (photos if is_image_file(found) else skipped).append(found)
    return photos, skipped
