"""The texture's compiled passes (numba, releasing the GIL).

``blend``: the full-size blend, own sample x own weight + mirror texel's sample x mirror weight + fill x the rest,
rounded to uint8. In numpy the same blend at 1024^2 made about a dozen float32 temporaries of 12 MB and cost ~45 ms
a face, as much as the rest of the texture; this loop reads each input once.
``interpolate``: per-vertex values at every atlas texel from its triangle's corners and barycentric weights
(``np.einsum`` with the gather of the corners' values cost ~5 ms a face at 256^2; this ~0.3 ms).
"""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True, fastmath=True)
def _blend(colours, own, mirror, fill, out, rounded):  # pragma: no cover - compiled
    height, width = own.shape
    for y in range(height):
        for x in range(width):
            a, b = own[y, x], mirror[y, x]
            rest = min(max(1.0 - a - b, 0.0), 1.0)
            for c in range(3):
                value = colours[y, x, c] * a + colours[y, width - 1 - x, c] * b + fill[y, x, c] * rest
                if rounded:
                    out[y, x, c] = np.uint8(min(max(value + 0.5, 0.0), 255.0))
                else:
                    out[y, x, c] = value


@numba.njit(cache=True, nogil=True)
def _interpolate(weights, corners, values, out):  # pragma: no cover - compiled
    for k in range(weights.shape[0]):
        for d in range(values.shape[1]):
            total = np.float32(0.0)
            for j in range(3):
                total += weights[k, j] * values[corners[k, j], d]
            out[k, d] = total


def interpolate(weights: np.ndarray, corners: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(K, D) float32: sum over j of weights[k, j] * values[corners[k, j]] (weights (K, 3), corners (K, 3))."""
    values = np.ascontiguousarray(values, np.float32)
    out = np.empty((len(weights), values.shape[1]), np.float32)
    _interpolate(np.ascontiguousarray(weights, np.float32), np.ascontiguousarray(corners), values, out)
    return out


def blend(colours: np.ndarray, own: np.ndarray, mirror: np.ndarray, fill: np.ndarray,
          rounded: bool = True) -> np.ndarray:
    """(H, W, 3) uint8 (float32, neither rounded nor clipped, with ``rounded=False``): see the module doc;
    ``mirror`` weighs the horizontally mirrored texel's colour."""
    out = np.empty(colours.shape, np.uint8 if rounded else np.float32)
    _blend(np.ascontiguousarray(colours), np.ascontiguousarray(own, np.float32),
           np.ascontiguousarray(mirror, np.float32), np.ascontiguousarray(fill, np.float32), out, rounded)
    return out


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernels at engine load, not in the first job."""
    for rounded in (True, False):
        blend(np.zeros((2, 2, 3), np.uint8), np.zeros((2, 2), np.float32), np.zeros((2, 2), np.float32),
              np.zeros((2, 2, 3), np.float32), rounded)
    interpolate(np.ones((1, 3), np.float32) / 3, np.zeros((1, 3), np.int64), np.zeros((1, 4), np.float32))
