"""Decode memory: a photo at MAX_PIXELS, which compresses to a few hundred KB, is decoded within DECODE_MEMORY_BYTES
(peak RSS of a fresh process, measured around the decode alone), reduced to what fits; before, a 7071x7071 PNG took
1,034 MiB and a 16-bit RGBA one 1,392 MiB."""
from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from face3d.shared.config import load_settings
from face3d.shared.errors import ErrorCode, InputError
from face3d.shared.imaging import decode_image

SIDE = 7071                                      # 7071^2 = 49,999,041 pixels: just inside MAX_PIXELS
# Peak RSS from /proc (VmHWM): getrusage's ru_maxrss survives exec, so it would report the parent's size.
MEASURE = """
import json, re, sys
from face3d.shared.imaging import decode_image
def peak():
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1)) * 1024
data = open(sys.argv[1], "rb").read()
before = peak()
photo = decode_image(data, name="big")
print(json.dumps({"before": before, "peak": peak(), "shape": list(photo.rgb.shape)}))
"""


def flat_png(width: int, height: int, bit_depth: int, colour_type: int, channels: int) -> bytes:
    """A one-colour PNG written row by row (no image of that size is ever held here)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row, packer = b"\x00" + bytes([0x7f]) * (width * channels * bit_depth // 8), zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def measure(tmp_path: Path, data: bytes) -> dict:
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    done = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["png-rgb-8", "png-rgba-16", "jpeg-rgb"])
def test_a_photo_at_max_pixels_decodes_within_the_budget(tmp_path, kind):
    budget = load_settings(env={}).decode_memory_bytes
    if kind == "jpeg-rgb":
        buffer = io.BytesIO()
        Image.new("RGB", (SIDE, SIDE), (127, 90, 60)).save(buffer, "JPEG", quality=80)      # freed at once
        data = buffer.getvalue()
    else:
        data = flat_png(SIDE, SIDE, *((8, 2, 3) if kind == "png-rgb-8" else (16, 6, 4)))
    assert len(data) < 20 * 1024 ** 2                # within MAX_UPLOAD_BYTES: anyone can send it
    result = measure(tmp_path, data)
    used = result["peak"] - result["before"]
    print(f"{kind}: {len(data)} bytes, decode peak +{used >> 20} MiB (process {result['peak'] >> 20} MiB), "
          f"decoded to {result['shape']}")
    assert used <= budget, f"decode took {used >> 20} MiB, over the budget of {budget >> 20} MiB"
    height, width, _ = result["shape"]
    assert width * height * 16 <= budget and width >= SIDE // 3      # reduced to fit, no more than needed


def test_small_photos_are_not_reduced_and_large_ones_keep_their_aspect():
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 1000), (10, 20, 30)).save(buffer, "PNG")
    assert decode_image(buffer.getvalue(), memory_bytes=256 * 1024 ** 2).rgb.shape == (1000, 4000, 3)
    reduced = decode_image(buffer.getvalue(), memory_bytes=32 * 1024 ** 2).rgb        # fits at half size
    assert reduced.shape == (500, 2000, 3) and tuple(reduced[0, 0]) == (10, 20, 30)


def test_a_decode_that_cannot_fit_is_image_too_large_before_decoding():
    data = flat_png(3000, 3000, 16, 6, 4)           # 36 MB decoded at full size, more than the budget given
    with pytest.raises(InputError) as refused:
        decode_image(data, memory_bytes=16 * 1024 ** 2)
    assert refused.value.code is ErrorCode.IMAGE_TOO_LARGE and "DECODE_MEMORY_BYTES" in refused.value.message


THUMBNAIL = MEASURE.replace("from face3d.shared.imaging import decode_image", "from face3d.api.downloads import thumbnail") \
    .replace('photo = decode_image(data, name="big")', "small = thumbnail(data, 96)") \
    .replace('"shape": list(photo.rgb.shape)', '"shape": [len(small)]')


@pytest.mark.slow
def test_a_thumbnail_of_a_photo_at_max_pixels_makes_no_full_size_copy(tmp_path):
    """GET /v1/jobs/{id}/input?max_side= decoded the whole photo and copied it twice (+573 MiB for this PNG)."""
    path = tmp_path / "big.png"
    path.write_bytes(flat_png(SIDE, SIDE, 16, 6, 4))
    done = subprocess.run([sys.executable, "-c", THUMBNAIL, str(path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    used = result["peak"] - result["before"]
    assert used <= SIDE * SIDE * 4 * 1.25, f"thumbnail took {used >> 20} MiB"       # the decode + its reduction
