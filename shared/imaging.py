"""Photos in: recognising an image by its bytes (what the API and the batch worker accept), and decoding bytes or
a path into an upright 8-bit RGB ``Photo``, or a typed ``InputError``.

The pixel limit is checked from the header, before any pixel is decoded, so a decompression bomb costs nothing.
The type is recognised by magic numbers, never by the client's file name or Content-Type.
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from face3d.shared.engines.base import Options, Photo
from face3d.shared.errors import ErrorCode, Face3dError, InputError
from face3d.shared.mediatypes import SUPPORTED_TYPES, sniff_image_type

NEUTRAL_BACKGROUND = (128, 128, 128)   # what transparent pixels become (black would read as a dark photo)


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


def decode_image(data: bytes, name: str = "photo", max_pixels: int = Options.max_pixels) -> Photo:
    if not data:
        raise InputError(f"{name}: the file is empty")
    image = _open_checked(data, name, max_pixels)
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        rgb = _to_rgb(image)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"{name}: the image data is corrupt or truncated ({exc})") from exc
    return Photo(rgb=rgb, name=name)


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
    if image.mode in ("RGBA", "RGBa"):
        background = Image.new("RGBA", image.size, NEUTRAL_BACKGROUND + (255,))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    if image.mode == "F":
        return _wide_gray_to_rgb(np.asarray(image))
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _wide_gray_to_rgb(pixels: np.ndarray) -> np.ndarray:
    """16-bit (and 32-bit int / float) grey to 8 bits: 16-bit full scale maps to 255, floats by their own maximum."""
    values = np.nan_to_num(pixels.astype(np.float64))
    if pixels.dtype.kind == "f":
        full_scale = max(float(values.max()), 1.0)
    else:
        full_scale = max(float(values.max()), 65535.0)
    gray = np.clip(values / full_scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
