"""Measures of a face texture that a person sees: the seam down the UV midline, and how much of the atlas is used.

The seam: a texture made from a photo of one half of a face and the mirror image of that half can show a line or a
step where the halves meet (u = 0.5): a dark streak where the midline sampled hair, or a hard colour split. Per
atlas row the largest horizontal colour step (RGB distance) within a narrow band around the midline, averaged over
the rows of the chart, divided by the median horizontal colour step over the whole chart (the texture's ordinary
local gradient). A clean face measures a few units (the band's maximum of 2 * BAND + 1 ordinary steps, plus the
nose's ridge); a streak or split measures several times that.
"""
from __future__ import annotations

import cv2
import numpy as np

SIDE = 256                   # the texture is measured at this side (a seam is wider than a texel at any size)
BAND = 3                     # texels either side of the midline at SIDE (~2 mm of a life-size face)


def chart_mask(uvs: np.ndarray, triangles: np.ndarray, side: int = SIDE) -> np.ndarray:
    """(side, side) bool: the texels the mesh's UV triangles cover (row 0 = v 1), one texel in from the border."""
    pixels = np.round(np.c_[uvs[:, 0] * side, (1.0 - uvs[:, 1]) * side] * 16).astype(np.int32)
    mask = np.zeros((side, side), np.uint8)
    cv2.fillPoly(mask, list(pixels[triangles]), 1, lineType=cv2.LINE_8, shift=4)
    return cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)


def horizontal_steps(texture: np.ndarray, side: int = SIDE) -> np.ndarray:
    """(side, side - 1) RGB distance between horizontally neighbouring texels of the texture resized to side."""
    small = cv2.resize(np.asarray(texture)[:, :, :3], (side, side), interpolation=cv2.INTER_AREA).astype(np.float32)
    return np.linalg.norm(small[:, 1:] - small[:, :-1], axis=2)


def seam_step(texture: np.ndarray, uvs: np.ndarray, triangles: np.ndarray) -> float:
    """The mean largest colour step across the UV midline over the texture's median local colour step."""
    steps = horizontal_steps(texture)
    chart = chart_mask(uvs, triangles)
    valid = chart[:, 1:] & chart[:, :-1]
    middle = SIDE // 2 - 1                        # steps[:, middle] lies between the two midline columns
    band = slice(middle - BAND, middle + BAND + 1)
    rows = valid[:, band].all(axis=1)
    ordinary = float(np.median(steps[valid]))
    return float(steps[rows, band].max(axis=1).mean() / max(ordinary, 1e-6))


def atlas_use(uvs: np.ndarray, triangles: np.ndarray, side: int = 1024) -> float:
    """The share of the atlas the UV chart covers."""
    pixels = np.round(np.c_[uvs[:, 0] * side, (1.0 - uvs[:, 1]) * side] * 16).astype(np.int32)
    mask = np.zeros((side, side), np.uint8)
    cv2.fillPoly(mask, list(pixels[triangles]), 1, lineType=cv2.LINE_8, shift=4)
    return float(mask.mean())
