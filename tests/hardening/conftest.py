"""An API on a recording queue, local storage and both databases; the expansion a worker would run is called
directly (``expand``), so every step of a batch's life is visible."""
from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest

from tests.stubs import RecordingQueue


@pytest.fixture
def queue():
    return RecordingQueue()


@pytest.fixture
def make_settings(tmp_path):
    from face3d.shared.config import load_settings

    def make(**env: str):
        base = {"RATE_LIMIT_SUBMIT": "off", "RATE_LIMIT_READ": "off", "RATE_LIMIT_BATCH_ITEMS": "off",
                "STORAGE_DIR": str(tmp_path / "storage")}
        return load_settings(env={**base, **env}, data_dir=tmp_path / "data")

    return make


@pytest.fixture
def api(make_settings, session_factory, local_storage, queue):
    """make(**env) -> (test client, settings, expand(batch_id))."""
    from face3d.api.app import create_app

    def make(**env: str):
        settings = make_settings(**env)
        app = create_app(settings, session_factory=session_factory, storage=local_storage, queue=queue)

        def expand(batch_id: str) -> str:
            from face3d.shared import expansion     # imported here: the tests also run (and fail) on older code

            return expansion.expand(session_factory, settings, local_storage, queue, batch_id)

        return app.test_client(), settings, expand

    return make


def stored_keys(storage) -> list[str]:
    """Every file in a local storage folder, read from the disk itself (staging files included)."""
    return sorted(path.relative_to(storage.root).as_posix() for path in Path(storage.root).rglob("*")
                  if path.is_file())


def zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def overlapping_zip(data: bytes, copies: int) -> bytes:
    """One local entry and ``copies`` central-directory entries that all point at it (names a00.png, a01.png...)."""
    single = zip_bytes({"a00.png": data})
    start_dir = single.index(b"PK\x01\x02")
    end = single.index(b"PK\x05\x06")
    record = single[start_dir:end]
    directory = b"".join(record.replace(b"a00.png", f"a{i:02d}.png".encode()) for i in range(copies))
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, copies, copies, len(directory), start_dir, 0)
    return single[:start_dir] + directory + eocd


def lying_zip(name: str, data: bytes, declared: int) -> bytes:
    """A zip whose local and central headers both declare ``declared`` bytes for an entry holding ``data``."""
    raw = bytearray(zip_bytes({name: data}))
    local = raw.index(b"PK\x03\x04")
    struct.pack_into("<L", raw, local + 22, declared)
    central = raw.index(b"PK\x01\x02")
    struct.pack_into("<L", raw, central + 24, declared)
    return bytes(raw)


def png_bytes(faces_dir: Path) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 90, 60)).save(buffer, format="PNG")
    return buffer.getvalue()
