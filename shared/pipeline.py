"""One photo, end to end: decode -> reconstruct -> write artifacts. Used by ``face3d reconstruct`` and the worker.

Errors propagate as ``shared.errors`` types (InputError for undecodable or oversized photos, NoFaceError, ...).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from face3d.shared.artifacts import RESULT_NAME, WrittenFn, result_document, write_artifacts
from face3d.shared.engines.base import Engine, Options, ProgressFn, Reconstruction
from face3d.shared.imaging import decode_image


@dataclass
class PhotoResult:
    reconstruction: Reconstruction
    files: list[Path]
    document: dict


def process_photo(data: bytes, name: str, engine: Engine, options: Options, outdir: Path,
                  progress: ProgressFn | None = None, on_written: WrittenFn | None = None) -> PhotoResult:
    """``on_written``: called with each milestone's files as soon as they exist (shared.artifacts)."""
    if progress is not None:
        progress("decode")
    start = time.perf_counter()
    photo = decode_image(data, name=name, max_pixels=options.max_pixels, memory_bytes=options.decode_memory_bytes)
    decode_ms = (time.perf_counter() - start) * 1000
    recon = engine.reconstruct(photo, options, progress)
    recon.timings_ms = {"decode": decode_ms, **recon.timings_ms}
    if recon.photo is None:
        recon.photo = photo
    files = write_artifacts(recon, Path(outdir), options, progress, on_written)
    artifacts = [path for path in files if path.name != RESULT_NAME]
    return PhotoResult(reconstruction=recon, files=files, document=result_document(recon, artifacts, options))
