"""Square crops around detected faces, sized for HRN, and the map back to photo pixels."""
from __future__ import annotations

import cv2
import numpy as np

from face3d.shared.engines.hrn.convert import CropBox

Box = tuple[float, float, float, float]

CROP_MARGIN = 0.6       # of the face side on each side: HRN's RetinaFace and its 1.35x landmark box need context
MIN_CROP_SIDE = 512     # HRN's detector runs at 512 px; tiny faces are upscaled so it still finds them
MAX_CROP_SIDE = 1500    # HRN itself shrinks inputs over 2000 px to 1500 and would not tell us


def crop_for_hrn(rgb: np.ndarray, box: Box, margin: float = CROP_MARGIN) -> tuple[np.ndarray, CropBox]:
    """Cut a square (clipped at the photo edges) around ``box`` and rescale it into HRN's comfortable size range."""
    height, width = rgb.shape[:2]
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    left, top = int(max(0, np.floor(cx - side / 2))), int(max(0, np.floor(cy - side / 2)))
    right, bottom = int(min(width, np.ceil(cx + side / 2))), int(min(height, np.ceil(cy + side / 2)))
    region = rgb[top:bottom, left:right]
    scale = _scale_into_range(max(region.shape[:2]))
    if scale != 1.0:
        size = (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale)))
        region = cv2.resize(region, size, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA)
    return np.ascontiguousarray(region), CropBox(x0=float(left), y0=float(top), scale=scale)


def _scale_into_range(long_side: int) -> float:
    if long_side < MIN_CROP_SIDE:
        return MIN_CROP_SIDE / long_side
    if long_side > MAX_CROP_SIDE:
        return MAX_CROP_SIDE / long_side
    return 1.0
