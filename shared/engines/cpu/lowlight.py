"""Low-light detection and enhancement (CLAHE on the L channel of LAB, then a gamma lift).

Measured on ../shared/faces: d_lowlight_blurry_night has mean L ~ 30/255; well-lit photos are above ~90.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

DARK_MEAN = 70.0             # mean L (0..255) below which a photo counts as dark
FLAT_MEAN, FLAT_STD = 100.0, 25.0   # or dim-ish and flat
BAR_STD = 2.0                # an edge row / column flatter than this is a bar, not picture


@dataclass(frozen=True)
class Light:
    mean: float
    contrast: float

    @property
    def is_low(self) -> bool:
        return self.mean < DARK_MEAN or (self.mean < FLAT_MEAN and self.contrast < FLAT_STD)


def measure(rgb: np.ndarray) -> Light:
    step = max(1, int(max(rgb.shape[:2]) // 256))
    sample = np.ascontiguousarray(rgb[::step, ::step])
    lightness = without_bars(cv2.cvtColor(sample, cv2.COLOR_RGB2LAB)[:, :, 0].astype(np.float32))
    return Light(float(lightness.mean()), float(lightness.std()))


def without_bars(lightness: np.ndarray) -> np.ndarray:
    """Drop flat letterbox / pillarbox bars at the edges: black bars made a normally lit 4-faces PNG count as dark."""
    rows = np.flatnonzero(lightness.std(axis=1) > BAR_STD)
    cols = np.flatnonzero(lightness.std(axis=0) > BAR_STD)
    if len(rows) < 2 or len(cols) < 2:
        return lightness
    return lightness[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def enhance(rgb: np.ndarray, light: Light) -> np.ndarray:
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    tiles = max(2, min(8, min(rgb.shape[:2]) // 64))
    lightness = cv2.createCLAHE(clipLimit=2.5, tileGridSize=(tiles, tiles)).apply(lab[:, :, 0])
    gamma = float(np.clip(np.log(0.45) / np.log(max(light.mean, 5.0) / 255.0), 0.4, 1.0))
    table = np.clip(((np.arange(256) / 255.0) ** gamma) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    lab[:, :, 0] = cv2.LUT(lightness, table)
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
