"""Worker memory at the maximum input: one job end to end (decode -> cpu engine -> every artifact) on a photo of
MAX_PIXELS, each in a fresh process, peak RSS from /proc (VmHWM). The README's Memory figures come from here.

Run: ``.venv/bin/python bench/bench_memory.py [--faces-dir DIR]`` (``make bench-memory``). Prints one line per
input; asserts nothing. Inputs: a 7071x7071 PNG (8-bit RGB, and 16-bit RGBA) and a JPEG of that size, each a flat
canvas with a real face photo scaled into it, so the engine finds a face and writes its files.
"""
from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SIDE = 7071
FACE = "a_frontal_obama.jpg"
JOB = """
import json, re, sys, tempfile
def peak():
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) >> 10
from face3d.shared.config import load_settings
from face3d.shared.engines import get_engine
from face3d.shared.engines.base import Options
from face3d.shared.pipeline import process_photo
engine = get_engine("cpu")
loaded = peak()
settings = load_settings(env={})
options = Options(max_pixels=settings.max_pixels, decode_memory_bytes=settings.decode_memory_bytes)
with tempfile.TemporaryDirectory() as out:
    result = process_photo(open(sys.argv[1], "rb").read(), "big", engine, options, out)
print(json.dumps({"engine_loaded_mib": loaded, "peak_mib": peak(), "faces": len(result.reconstruction.faces)}))
"""


def canvas(face_path: Path) -> np.ndarray:
    face = Image.open(face_path).convert("RGB")
    face = face.resize((SIDE // 2, round(face.height * (SIDE // 2) / face.width)), Image.Resampling.LANCZOS)
    out = Image.new("RGB", (SIDE, SIDE), (120, 120, 120))
    out.paste(face, ((SIDE - face.width) // 2, (SIDE - face.height) // 2))
    return np.asarray(out)


def encodings(rgb: np.ndarray) -> dict[str, bytes]:
    jpeg, png = io.BytesIO(), io.BytesIO()
    Image.fromarray(rgb).save(jpeg, "JPEG", quality=85)
    Image.fromarray(rgb).save(png, "PNG", compress_level=6)
    wide = io.BytesIO()
    rgba16 = np.dstack([rgb.astype(">u2") * 257, np.full(rgb.shape[:2], 65535, ">u2")])
    _write_png16(wide, rgba16)
    return {"png-rgb-8": png.getvalue(), "png-rgba-16": wide.getvalue(), "jpeg": jpeg.getvalue()}


def _write_png16(out: io.BytesIO, rgba: np.ndarray) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(6)
    idat = b"".join(packer.compress(b"\x00" + row.tobytes()) for row in rgba) + packer.flush()
    header = struct.pack(">IIBBBBB", rgba.shape[1], rgba.shape[0], 16, 6, 0, 0, 0)
    out.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces-dir", type=Path, default=ROOT / ".." / "shared" / "faces")
    args = parser.parse_args()
    inputs = encodings(canvas(args.faces_dir / FACE))
    with tempfile.TemporaryDirectory() as folder:
        for name, data in inputs.items():
            path = Path(folder) / name
            path.write_bytes(data)
            done = subprocess.run([sys.executable, "-c", JOB, str(path)], capture_output=True, text=True, check=True)
            print(f"{name:12s} {len(data) / 2 ** 20:6.1f} MiB file: {json.loads(done.stdout.splitlines()[-1])}")


if __name__ == "__main__":
    main()
