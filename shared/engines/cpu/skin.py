"""How much each texel's photo sample looks like this face's skin, from the face's own colour statistics.

The model is measured on the reference region of the atlas (cheeks, forehead and nose away from the outline and
the features; shared/engines/cpu/regions.py) where the photo sees the face well, so a dark, a pale, a tinted or a
grey face each get their own. A sample is described by its log chromaticities log(R/G), log(B/G), which shading
barely moves, and its log luma, which shading moves a lot: robust centre and spread (median, MAD) of each, and a
sample's distance to the centre in spreads, luma counting for less. Hair (darker, or less red), the background and
most occluders lie far from it. The eyes, brows and lips are allowed to differ: there the likeness is 1.
"""
from __future__ import annotations

import cv2
import numpy as np

from face3d.shared.engines.cpu.regions import regions

REFERENCE_SEEN = 0.6         # reference texels the photo sees at least this well define the model
MIN_REFERENCE = 50           # fewer well-seen reference texels than this: every sample counts as skin
SPREAD_FLOOR = (0.03, 0.03, 0.12)   # log R/G, log B/G, log Y: an even face must not turn every shadow into 'not skin'
LUMA_DISCOUNT = 2.0          # luma distances count this many times less than chroma ones (shading, highlights)
NEAR, FAR = 2.5, 4.5         # distances (robust sigmas) of a sure skin sample and of a sure non-skin one
ROBUST_SIGMA = 1.4826        # MAD -> sigma of a normal distribution


def features(colours: np.ndarray) -> np.ndarray:
    """(..., 3) log R/G, log B/G, log luma of RGB colours (offset by 1 so black stays finite)."""
    rgb = colours.astype(np.float32) + 1.0
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.stack([np.log(rgb[..., 0] / rgb[..., 1]), np.log(rgb[..., 2] / rgb[..., 1]), np.log(luma)], axis=-1)


def skin_likeness(colours: np.ndarray, seen: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """(C, C) float32 0..1 per coarse texel: 1 = the face's own skin colour (or a feature region), 0 = not skin."""
    size = colours.shape[0]
    region = regions(size)
    values = features(colours)
    reference = values[(seen >= REFERENCE_SEEN) & region.reference & covered]
    if len(reference) < MIN_REFERENCE:
        return np.ones(seen.shape, np.float32)
    centre = np.median(reference, axis=0)
    spread = np.maximum(ROBUST_SIGMA * np.median(np.abs(reference - centre), axis=0), SPREAD_FLOOR)
    z = [(values[..., k] - centre[k]) / spread[k] for k in range(3)]
    distance = np.sqrt(z[0] * z[0] + z[1] * z[1] + (z[2] / LUMA_DISCOUNT) ** 2)   # a sum over a last axis of 3 is slow
    likeness = np.clip((FAR - distance) / (FAR - NEAR), 0.0, 1.0)
    likeness = cv2.erode(likeness, np.ones((5, 5), np.uint8))     # texels near a border mix both colours
    return np.where(region.allowed, 1.0, likeness).astype(np.float32)
