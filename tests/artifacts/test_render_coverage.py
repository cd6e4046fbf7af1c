"""The rasteriser's coverage: a tiled square leaves no crack and no pixel outside it, whatever its triangles' shapes.

Each row of a triangle is drawn from a solved span (render._row_span), so these cases are the ones a span can get
wrong: edges through pixel centres exactly, slivers, edges nearly along a row, triangles smaller than a pixel.
"""
from __future__ import annotations

import numpy as np
import pytest

from face3d.shared.artifacts import render

SIZE = 96
LOW, HIGH = 8.3, 87.6          # the square's sides, between pixel centres


def tiled_square(cells: int, rng: np.random.Generator, snap_rows: bool) -> tuple[np.ndarray, np.ndarray]:
    """Screen xy of a (cells+1)^2 grid over the square, inner points moved, and two triangles a cell (mixed
    windings, so both facing sides are drawn)."""
    ticks = np.linspace(LOW, HIGH, cells + 1)
    xs, ys = np.meshgrid(ticks, ticks)
    inner = (slice(1, -1), slice(1, -1))
    step = (HIGH - LOW) / cells
    xs[inner] += rng.uniform(-0.45, 0.45, xs[inner].shape) * step
    ys[inner] += rng.uniform(-0.45, 0.45, ys[inner].shape) * step
    if snap_rows:        # inner points on pixel-centre rows, and (cells over a pixel) some level to within 1e-13
        ys[inner] = np.floor(ys[inner]) + 0.5
        if step > 1:     # below a pixel these become triangles under the degenerate-area cut-off, skipped
            ys[1:-1:2, 1:-1] += rng.choice([0.0, 1e-13, -1e-13], ys[1:-1:2, 1:-1].shape)
    xy = np.c_[xs.ravel(), ys.ravel()]
    index = np.arange((cells + 1) ** 2).reshape(cells + 1, cells + 1)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, 1:].ravel(), index[1:, :-1].ravel()
    flip = rng.random(len(a)) < 0.5
    first = np.where(flip[:, None], np.c_[a, c, b], np.c_[a, b, c])
    second = np.where(flip[:, None], np.c_[a, d, c], np.c_[a, c, d])
    return xy, np.concatenate([first, second]).astype(np.int64)


def coverage(xy: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    count = len(xy)
    best, hit = np.full(SIZE * SIZE, -np.inf, np.float32), np.full(SIZE * SIZE, -1, np.int32)
    nearness = np.random.default_rng(1).uniform(0.5, 1.0, count)
    sides, planes = np.ones(len(triangles)), np.empty((len(triangles), 12))
    render._rasterize(xy, nearness, triangles, SIZE, best, hit, sides, planes, np.ones(count), np.zeros((count, 2)),
                      np.ones(count))
    return hit.reshape(SIZE, SIZE) >= 0


def inside_square() -> np.ndarray:
    centres = np.arange(SIZE) + 0.5
    inside = (centres > LOW) & (centres < HIGH)
    return inside[:, None] & inside[None, :]


@pytest.mark.parametrize("cells", [4, 23, 150])          # ~20 px cells, ~3.5 px cells, cells under a pixel
@pytest.mark.parametrize("snap_rows", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_tiled_square_is_covered_exactly(cells, snap_rows, seed):
    xy, triangles = tiled_square(cells, np.random.default_rng(seed), snap_rows)
    covered = coverage(xy, triangles)
    expected = inside_square()
    assert not (expected & ~covered).any(), f"cracks at {np.argwhere(expected & ~covered)[:5].tolist()}"
    assert not (covered & ~expected).any(), f"outside the square at {np.argwhere(covered & ~expected)[:5].tolist()}"


def test_a_sliver_along_a_row_covers_the_centres_on_it():
    """A triangle one 1e-9 px high lying on a row of pixel centres: the exact test takes those centres."""
    xy = np.array([[10.0, 20.5], [60.0, 20.5], [35.0, 20.5 + 1e-9]])
    covered = coverage(xy, np.array([[0, 1, 2]]))
    rows = np.nonzero(covered.any(axis=1))[0]
    assert rows.tolist() == [20]
    assert covered[20, 11:59].all()
