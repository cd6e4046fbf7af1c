"""Measures of a face texture that a person sees: the seam down the UV midline, and how much of the atlas is used.

The seam: a texture made from a photo of one half of a face and the mirror image of that half can show a line or a
step where the halves meet (u = 0.5): a dark streak where the midline sampled hair, or a hard colour split. The
measure is the mean colour step across the midline relative to the texture's median local colour step: the texture
resized to SIDE, averaged over STEP x STEP boxes; the step at a column boundary is the RGB distance between the box
just left of it and the box just right of it. Its mean over the chart's rows at the midline, divided by its median
over the boundaries of the central band of the chart (|u - 0.5| < BAND, the midline's own columns left out), where
the UV layout's scale is close to the midline's. A texture whose midline is like its surroundings measures about 1.
"""
from __future__ import annotations

import cv2
import numpy as np

SIDE = 256                   # the texture is measured at this side (a seam is wider than a texel at any size)
STEP = 4                     # box side at SIDE: ~2.5 mm of a life-size face
BAND = 0.15                  # half width (in u) of the central band the ordinary step is measured on


def chart_mask(uvs: np.ndarray, triangles: np.ndarray, side: int = SIDE) -> np.ndarray:
    """(side, side) bool: the texels the mesh's UV triangles cover (row 0 = v 1), one texel in from the border."""
    pixels = np.round(np.c_[uvs[:, 0] * side, (1.0 - uvs[:, 1]) * side] * 16).astype(np.int32)
    mask = np.zeros((side, side), np.uint8)
    cv2.fillPoly(mask, list(pixels[triangles]), 1, lineType=cv2.LINE_8, shift=4)
    return cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)


def box_steps(texture: np.ndarray, side: int = SIDE, step: int = STEP) -> np.ndarray:
    """(side, side) RGB distance between the step x step box left of each column boundary and the one right of it
    (column j: the boundary between columns j - 1 and j) of the texture resized to side."""
    small = cv2.resize(np.asarray(texture)[:, :, :3], (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    box = cv2.blur(small, (step, step), borderType=cv2.BORDER_REFLECT)   # centred: box[:, j] spans j - 2 .. j + 1
    left, right = np.roll(box, step // 2, axis=1), np.roll(box, -(step - step // 2), axis=1)
    return np.linalg.norm(left - right, axis=2)


def seam_step(texture: np.ndarray, uvs: np.ndarray, triangles: np.ndarray) -> float:
    """The mean colour step across the UV midline over the texture's median colour step (see the module doc)."""
    steps = box_steps(texture)
    inside = cv2.erode(chart_mask(uvs, triangles).astype(np.uint8), np.ones((STEP + 1, 2 * STEP + 1), np.uint8))
    inside = inside.astype(bool)
    middle = SIDE // 2
    offset = np.abs(np.arange(SIDE) - middle)
    band = inside & ((offset > STEP) & (offset < BAND * SIDE))[None, :]
    return float(steps[inside[:, middle], middle].mean() / max(float(np.median(steps[band])), 1e-6))


def atlas_use(uvs: np.ndarray, triangles: np.ndarray, side: int = 1024) -> float:
    """The share of the atlas the UV chart covers."""
    pixels = np.round(np.c_[uvs[:, 0] * side, (1.0 - uvs[:, 1]) * side] * 16).astype(np.int32)
    mask = np.zeros((side, side), np.uint8)
    cv2.fillPoly(mask, list(pixels[triangles]), 1, lineType=cv2.LINE_8, shift=4)
    return float(mask.mean())
