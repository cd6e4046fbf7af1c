"""Photos in: recognising an image by its bytes (what the API and the batch worker accept), and decoding bytes or
a path into an upright 8-bit RGB ``Photo``, or a typed ``InputError``.

The pixel limit is checked from the header, before any pixel is decoded, so a decompression bomb costs nothing.
The type is recognised by magic numbers, never by the client's file name or Content-Type.
"""
from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from face3d.shared.engines.base import Options, Photo
from face3d.shared.errors import ErrorCode, Face3dError, InputError
from face3d.shared.mediatypes import SUPPORTED_TYPES, sniff_image_type

NEUTRAL_BACKGROUND = (128, 128, 128)   # what transparent pixels become (black would read as a dark photo)
DECODE_MEMORY_BYTES = Options.decode_memory_bytes      # the DECODE_MEMORY_BYTES default (shared/config.py)
# What one pixel of the (reduced) image costs from the decode to the RGB array: the image, its upright copy, the
# alpha composite and the array (measured peaks: README, Memory).
WORKING_BYTES_PER_PIXEL = 16
STRIP_PIXELS = 1024 ** 2               # pixels reduced per band of rows
_REDUCIBLE = frozenset({"L", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "I", "F"})


def check_image_bytes(data: bytes, max_bytes: int, name: str | None = None) -> str:
    """The media type of bytes the service may store as a job's input: at most ``max_bytes``, of a type the engines
    decode. ``name``: the item named in the messages (default: the one upload of a request)."""
    if len(data) > max_bytes:
        raise Face3dError(f"{name or 'the image'} is larger than the limit of {max_bytes} bytes",
                          ErrorCode.PAYLOAD_TOO_LARGE)
    media_type = sniff_image_type(data)
    if media_type is None:
        raise Face3dError(f"{name or 'the file'} is not a supported image ({SUPPORTED_TYPES})",
                          ErrorCode.UNSUPPORTED_MEDIA_TYPE)
    return media_type


def load_image(path: str | Path, max_pixels: int = Options.max_pixels) -> Photo:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    return decode_image(data, name=path.name, max_pixels=max_pixels)


def decode_image(data: bytes, name: str = "photo", max_pixels: int = Options.max_pixels,
                 memory_bytes: int = DECODE_MEMORY_BYTES) -> Photo:
    """Upright 8-bit RGB within ``memory_bytes`` of pixel memory: a photo whose working copies would not fit is
    decoded reduced (JPEG: by the decoder itself, draft mode; others: PIL ``reduce`` right after the decode), and
    one whose decode alone would not fit is refused (image_too_large) before any pixel is decoded."""
    if not data:
        raise InputError(f"{name}: the file is empty")
    image = _open_checked(data, name, max_pixels)
    try:
        image = _decode_within(image, name, memory_bytes)
        ImageOps.exif_transpose(image, in_place=True)
        rgb = _to_rgb(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"{name}: the image data is corrupt or truncated ({exc})") from exc
    return Photo(rgb=rgb, name=name)


def decode_estimate(image: Image.Image) -> int:
    """Bytes Pillow needs to hold ``image`` decoded, from its header: pixels x bytes per pixel of its mode (Pillow
    keeps 2 to 4 bands in 4 bytes)."""
    width, height = image.size
    return width * height * _bytes_per_pixel(image.mode)


def reduce_factor(pixels: int, memory_bytes: int) -> int:
    """The smallest whole factor that brings ``pixels`` within the working memory (WORKING_BYTES_PER_PIXEL each)."""
    return max(1, math.ceil(math.sqrt(pixels * WORKING_BYTES_PER_PIXEL / max(1, memory_bytes))))


def plan_decode(image: Image.Image, name: str, memory_bytes: int) -> int:
    """The factor an opened (not yet decoded) ``image`` will be reduced by to fit ``memory_bytes``; a JPEG is set to
    decode at 1/2 to 1/8 scale already. InputError(image_too_large) when its plain decode would not fit."""
    width, height = image.size
    factor = reduce_factor(width * height, memory_bytes)
    if factor > 1 and image.format == "JPEG":
        image.draft(image.mode, (max(1, width // factor), max(1, height // factor)))
        factor = reduce_factor(image.width * image.height, memory_bytes)
    needed = decode_estimate(image) * (1 + 1 / factor ** 2 if factor > 1 else 1)
    if needed > memory_bytes:
        raise InputError(f"{name}: decoding {width}x{height} ({image.mode}) needs {int(needed) >> 20} MiB, over "
                         f"the decode budget of {memory_bytes >> 20} MiB (DECODE_MEMORY_BYTES)",
                         code=ErrorCode.IMAGE_TOO_LARGE)
    return factor


def _decode_within(image: Image.Image, name: str, memory_bytes: int) -> Image.Image:
    factor = plan_decode(image, name, memory_bytes)
    image.load()
    return _reduced_in_strips(image, factor) if factor > 1 else image


def reduced_image(image: Image.Image, max_side: int) -> Image.Image:
    """``image`` decoded (a JPEG by its decoder at 1/2 to 1/8 scale) and reduced by the largest whole factor that
    keeps its longer side at least ``max_side``: what a thumbnail is made from, without full-size copies."""
    if image.format == "JPEG":
        image.draft(image.mode, (max_side, max_side))
    image.load()
    factor = max(1, max(image.size) // max(1, max_side))
    return _reduced_in_strips(image, factor) if factor > 1 else image


def _reduced_in_strips(image: Image.Image, factor: int) -> Image.Image:
    """``image`` reduced by ``factor`` (box average), a band of rows at a time: Pillow's own reduce of an RGBA image
    first makes a premultiplied copy of the whole of it, which doubled the peak."""
    rows = factor * max(1, STRIP_PIXELS // (image.width * factor))
    out: Image.Image | None = None
    for top in range(0, image.height, rows):
        strip = _reducible(image.crop((0, top, image.width, min(image.height, top + rows)))).reduce(factor)
        if out is None:
            out = Image.new(strip.mode, (math.ceil(image.width / factor), math.ceil(image.height / factor)))
        out.paste(strip, (0, top // factor))
    assert out is not None
    out.info = dict(image.info)
    if "exif" in image.info or image.getexif():
        out.info["exif"] = image.getexif().tobytes()
    return out


def _reducible(strip: Image.Image) -> Image.Image:
    if strip.mode in _REDUCIBLE:
        return strip
    if strip.mode == "P":
        return strip.convert("RGBA" if "transparency" in strip.info else "RGB")
    if strip.mode.startswith("I;16"):
        return strip.convert("I")
    return strip.convert("RGBA" if strip.mode == "PA" else "L")


def _bytes_per_pixel(mode: str) -> int:
    if mode in ("1", "L", "P"):
        return 1
    return 2 if mode.startswith("I;16") else 4


def _open_checked(data: bytes, name: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise InputError(f"{name}: {exc}", code=ErrorCode.IMAGE_TOO_LARGE) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{name}: not a decodable image (supported: anything Pillow opens, e.g. JPEG, PNG, WebP)") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InputError(f"{name}: the image has no pixels")
    if width * height > max_pixels:
        raise InputError(
            f"{name}: {width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}",
            code=ErrorCode.IMAGE_TOO_LARGE,
        )
    if getattr(image, "is_animated", False):
        image.seek(0)
    return image


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        return _wide_gray_to_rgb(np.asarray(image))
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "La", "PA"):
        image = image.convert("RGBA")
    if image.mode == "RGBa":
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, NEUTRAL_BACKGROUND)
        background.paste(image, mask=image.getchannel("A"))      # one RGB copy, not three RGBA ones
        image = background
    if image.mode == "F":
        return _wide_gray_to_rgb(np.asarray(image))
    return np.ascontiguousarray(np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.uint8))


def _wide_gray_to_rgb(pixels: np.ndarray) -> np.ndarray:
    """16-bit (and 32-bit int / float) grey to 8 bits: 16-bit full scale maps to 255, floats by their own maximum."""
    values = np.nan_to_num(pixels.astype(np.float32), copy=False)
    full_scale = max(float(values.max()), 1.0 if pixels.dtype.kind == "f" else 65535.0)
    values *= 255.0 / full_scale
    values += 0.5
    gray = np.clip(values, 0, 255, out=values).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
