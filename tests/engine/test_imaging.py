"""decode_image / load_image: every format Pillow opens becomes upright 8-bit RGB; bad input is a typed error."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from face3d.shared.errors import ErrorCode, InputError
from face3d.shared.imaging import NEUTRAL_BACKGROUND, decode_image, load_image
from tests.engine.conftest import photo_path


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def gradient(mode: str = "RGB", size=(40, 30)) -> Image.Image:
    x = np.linspace(0, 255, size[0], dtype=np.uint8)
    rgb = np.stack(np.broadcast_arrays(x[None, :], x[None, ::-1], np.full((size[1], size[0]), 90, np.uint8)), axis=2)
    return Image.fromarray(np.ascontiguousarray(rgb[:, :, :3] if rgb.ndim == 3 else rgb)).convert(mode)


def assert_rgb(photo, width, height):
    assert photo.rgb.dtype == np.uint8
    assert photo.rgb.shape == (height, width, 3)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "TIFF"])
def test_common_formats_decode_to_rgb(fmt):
    photo = decode_image(encode(gradient(), fmt), name=f"x.{fmt.lower()}")
    assert_rgb(photo, 40, 30)
    assert photo.name == f"x.{fmt.lower()}"


def test_png_alpha_is_composited_on_neutral_background():
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[:, :5] = (255, 0, 0, 255)              # left half opaque red, right half fully transparent black
    photo = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert tuple(photo.rgb[0, 0]) == (255, 0, 0)
    assert tuple(photo.rgb[0, 9]) == NEUTRAL_BACKGROUND


def test_palette_and_grayscale_and_cmyk():
    for mode in ("P", "L", "LA", "1"):
        assert_rgb(decode_image(encode(gradient(mode), "PNG")), 40, 30)
    cmyk = decode_image(encode(gradient("CMYK"), "JPEG"))
    assert_rgb(cmyk, 40, 30)
    gray = decode_image(encode(gradient("L"), "PNG"))
    assert (gray.rgb[:, :, 0] == gray.rgb[:, :, 2]).all()


def test_16_bit_grey_is_scaled_not_clipped():
    wide = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    photo = decode_image(encode(Image.fromarray(wide), "PNG"))
    assert_rgb(photo, 64, 8)
    assert photo.rgb[0, 0, 0] == 0 and photo.rgb[0, -1, 0] == 255
    assert 120 <= photo.rgb[0, 32, 0] <= 135          # mid-grey stays mid-grey (not saturated white)


def test_animated_gif_takes_first_frame():
    frames = [Image.new("RGB", (12, 12), colour) for colour in ((250, 0, 0), (0, 250, 0))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50)
    photo = decode_image(buffer.getvalue())
    red, green, _ = photo.rgb[6, 6].astype(int)
    assert red > 200 and green < 50


def test_exif_orientation_is_applied():
    raw = Image.open(photo_path("g_exif_orientation6_hopper.jpg"))
    assert raw.getexif().get(0x0112) == 6
    upright = load_image(photo_path("g_exif_orientation6_hopper.jpg"))
    expected = np.asarray(raw.convert("RGB").transpose(Image.Transpose.ROTATE_270))
    assert upright.rgb.shape == expected.shape
    assert np.abs(upright.rgb.astype(int) - expected.astype(int)).mean() < 2


def test_exif_orientation_on_synthetic_wide_image():
    image = gradient(size=(40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = decode_image(encode(image, "JPEG", exif=exif))
    assert_rgb(photo, 20, 40)                          # rotated to portrait


def test_real_rgba_and_grayscale_photos():
    assert_rgb(load_image(photo_path("g_png_alpha_cutout_peace_sign.png")), 600, 399)
    assert_rgb(load_image(photo_path("g_grayscale_hopper.jpg")), 128, 128)


def test_pixel_limit_checked_before_decoding():
    with pytest.raises(InputError) as info:
        decode_image(encode(gradient(), "PNG"), max_pixels=100)
    assert info.value.code is ErrorCode.IMAGE_TOO_LARGE


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size but has no pixel data: opening it must not try to allocate it."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 10))


@pytest.mark.parametrize("side", [20_000, 60_000])
def test_decompression_bomb_is_image_too_large(side):
    with pytest.raises(InputError) as info:
        decode_image(png_header_only(side, side))
    assert info.value.code is ErrorCode.IMAGE_TOO_LARGE
    assert "pixels" in info.value.message


@pytest.mark.parametrize("data", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n" + b"\0" * 30])
def test_garbage_is_invalid_image(data):
    with pytest.raises(InputError) as info:
        decode_image(data, name="upload.bin")
    assert info.value.code is ErrorCode.INVALID_IMAGE
    assert "upload.bin" in info.value.message


def test_truncated_jpeg_is_invalid_image():
    data = photo_path("a_frontal_obama.jpg").read_bytes()
    with pytest.raises(InputError) as info:
        decode_image(data[: len(data) // 3])
    assert info.value.code is ErrorCode.INVALID_IMAGE


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError):
        load_image(tmp_path / "nope.jpg")
