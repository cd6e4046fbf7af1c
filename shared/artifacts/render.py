"""A textured (or plain), shaded z-buffer renderer on the CPU: a numba-compiled span rasteriser.

Each frame: rotate the mesh about a vertical axis through its bounding-box centre (yaw), project it
(perspective or orthographic, camera on +Z looking down -Z, framing fixed for every yaw so a turntable does not
jitter) in numpy, then three compiled loops: the rasteriser walks each row of every triangle's screen bounding box
from the first to the last pixel centre inside it (solved from the edge equations, settled by the exact test) and
resolves visibility on a float32 nearness buffer; the shader interpolates the winners' shading (perspective-
correct) and texture positions; the sampler reads the texture bilinearly (edge pixels repeated) and shades
(ambient + Lambert, two-sided so the inside of an open face shell is lit too). Without a texture the surface is
a plain grey: the shaded untextured render.

Why numba: the numpy version it replaces cost about 20 ms a 512^2 frame (candidate-pixel arrays, ``maximum.at``);
this one costs about 2.4 ms on one thread. The kernels are compiled with ``cache=True`` (to __pycache__, once per
install) and ``nogil=True``, so frames and faces can render in parallel threads (shared/threads.py); ``warm_up()``
compiles or loads them before the first job. tests/artifacts/test_render_reference.py holds the numpy renderer's
output on a fixed mesh.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, replace

import cv2
import numpy as np

os.environ.setdefault("NUMBA_NUM_THREADS", "1")     # no parallel=True kernels; threads come from shared/threads.py
import numba  # noqa: E402

from face3d.shared.engines.base import Face  # noqa: E402

# fastmath without "no NaN / no inf": the rasteriser's isfinite checks on vertices must stay.
FINITE_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
EDGE = 1e-7                              # pixel centres this close outside an edge count: no cracks between neighbours
BACKGROUND = (48, 48, 48)
LIGHT_DIRECTION = np.array([0.35, 0.45, 1.0]) / np.linalg.norm([0.35, 0.45, 1.0])   # towards the light, camera space
AMBIENT = 0.35
PLAIN_ALBEDO = (200, 200, 200)                       # the untextured render's surface colour


@dataclass(frozen=True)
class TexturedMesh:
    vertices: np.ndarray        # (N, 3) metres, Y up, +Z towards the viewer
    triangles: np.ndarray       # (M, 3) counter-clockwise seen from outside
    uvs: np.ndarray | None      # (N, 2), v = 0 at the bottom of the texture; None with no texture
    normals: np.ndarray         # (N, 3) unit
    texture: np.ndarray | None  # (T, T, 3) uint8 RGB, row 0 = top; None: the shaded untextured render

    @classmethod
    def from_face(cls, face: Face, textured: bool = True) -> TexturedMesh:
        texture = face.texture if textured else None
        return cls(face.vertices, face.triangles, face.uvs, face.normals, texture)

    def for_frame(self, side: int) -> TexturedMesh:
        """This mesh with its texture shrunk (area-averaged) to the smallest power of two >= ``side``, if larger:
        a frame cannot show more texels, and a texture that fits the caches samples several times faster."""
        if self.texture is None:
            return self
        target = 1 << max(int(np.ceil(np.log2(max(side, 2)))), 1)
        height, width = self.texture.shape[:2]
        if max(height, width) <= target:
            return self
        scale = target / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        return replace(self, texture=cv2.resize(np.asarray(self.texture, np.uint8), size, interpolation=cv2.INTER_AREA))


@dataclass(frozen=True)
class View:
    yaw_degrees: float = 0.0
    perspective: bool = True
    fov_degrees: float = 20.0
    fill: float = 0.9            # fraction of the frame the mesh's extent may take


@dataclass
class Rendered:
    rgb: np.ndarray              # (S, S, 3) uint8
    mask: np.ndarray             # (S, S) bool, True where the mesh covers the pixel


def yaw_matrix(degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _project(vertices, normals, light, size, yaw_degrees, perspective, fov_degrees, fill, xy, nearness, inv_w,
             dots):  # pragma: no cover - compiled
    """Screen xy, nearness (larger = closer, linear in screen space), 1/w and the cosine between the turned unit
    normal and the light (``dots``) of every vertex.

    Framing: about the bounding box centre of the finite vertices, with the half-extent over every yaw (the
    horizontal radius about the pivot, the vertical half-height), so a turntable does not jitter."""
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for i in range(vertices.shape[0]):
        if np.isfinite(vertices[i, 0] + vertices[i, 1] + vertices[i, 2]):
            for k in range(3):
                lo[k], hi[k] = min(lo[k], vertices[i, k]), max(hi[k], vertices[i, k])
    if lo[0] > hi[0]:                                  # no finite vertex at all
        lo[:], hi[:] = 0.0, 0.0
    pivot = (lo + hi) / 2
    radius = 0.0
    for i in range(vertices.shape[0]):
        if np.isfinite(vertices[i, 0] + vertices[i, 1] + vertices[i, 2]):
            radius = max(radius, np.hypot(vertices[i, 0] - pivot[0], vertices[i, 2] - pivot[2]))
    half = max(radius, (hi[1] - lo[1]) / 2, 1e-9) / fill
    c, s = np.cos(np.radians(yaw_degrees)), np.sin(np.radians(yaw_degrees))
    tan = np.tan(np.radians(fov_degrees) / 2)
    distance = half / tan + half                       # the nearest possible point stays `half` in front of the lens
    focal = (size / 2) / tan * (distance - half) / distance
    for i in range(vertices.shape[0]):
        x, y, z = vertices[i, 0] - pivot[0], vertices[i, 1] - pivot[1], vertices[i, 2] - pivot[2]
        rx, rz = c * x + s * z, -s * x + c * z
        if perspective:
            inv_w[i] = 1.0 / (distance - rz)
            xy[i, 0], xy[i, 1] = focal * rx * inv_w[i], focal * y * inv_w[i]
            nearness[i] = inv_w[i]
        else:
            inv_w[i] = 1.0
            xy[i, 0], xy[i, 1] = rx * (size / 2) / half, y * (size / 2) / half
            nearness[i] = rz
        xy[i, 0], xy[i, 1] = xy[i, 0] + size / 2, size / 2 - xy[i, 1]
        nx, ny, nz = normals[i, 0], normals[i, 1], normals[i, 2]
        length = max(np.sqrt(nx * nx + ny * ny + nz * nz), 1e-12)
        dots[i] = ((c * nx + s * nz) * light[0] + ny * light[1] + (-s * nx + c * nz) * light[2]) / length


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=FINITE_FASTMATH)
def _rasterize(xy, nearness, triangles, size, best, hit, sides, planes, inv_w, uvs,
               dots):  # pragma: no cover - compiled
    """Per pixel: the front-most triangle (``hit``, -1 for none); per triangle: +1 facing the camera, -1 facing
    away (``sides``, the two-sided lighting's sign), and the screen-space planes (``planes``: x, y, constant
    coefficients of 1/w, u/w, v/w and cosine/w, which are linear in screen space) the shader interpolates."""
    for t in range(triangles.shape[0]):
        i0, i1, i2 = triangles[t, 0], triangles[t, 1], triangles[t, 2]
        ax, ay, bx, by, cx, cy = xy[i0, 0], xy[i0, 1], xy[i1, 0], xy[i1, 1], xy[i2, 0], xy[i2, 1]
        if not (np.isfinite(ax + ay + bx + by + cx + cy) and np.isfinite(nearness[i0] + nearness[i1] + nearness[i2])):
            continue
        abx, aby, acx, acy = bx - ax, by - ay, cx - ax, cy - ay
        area = abx * acy - aby * acx
        if abs(area) <= 1e-9:
            continue
        # Screen y points down, so a triangle facing the camera has a negative signed area.
        sides[t] = 1.0 if area < 0 else -1.0
        p1x, p1y, p1c = acy / area, -acx / area, (ay * acx - ax * acy) / area
        p2x, p2y, p2c = -aby / area, abx / area, (ax * aby - ay * abx) / area
        _planes(planes[t], (i0, i1, i2), (p1x, p1y, p1c, p2x, p2y, p2c), inv_w, uvs, dots)
        x0 = max(int(np.ceil(min(ax, bx, cx) - 0.5)), 0)
        x1 = min(int(np.floor(max(ax, bx, cx) - 0.5)), size - 1)
        y0 = max(int(np.ceil(min(ay, by, cy) - 0.5)), 0)
        y1 = min(int(np.floor(max(ay, by, cy) - 0.5)), size - 1)
        n0 = nearness[i0]
        d1, d2 = nearness[i1] - n0, nearness[i2] - n0
        for py in range(y0, y1 + 1):
            fy = py + 0.5
            b1, b2 = p1y * fy + p1c, p2y * fy + p2c
            s0, s1 = _row_span(p1x, b1, p2x, b2, x0, x1)
            for px in range(s0, s1 + 1):
                fx = px + 0.5
                l1, l2 = p1x * fx + b1, p2x * fx + b2
                key = np.float32(n0 + l1 * d1 + l2 * d2)
                pixel = py * size + px
                if key >= best[pixel]:               # ties (shared edges) go to the later triangle
                    best[pixel] = key
                    hit[pixel] = t


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=FINITE_FASTMATH, inline="always")
def _covers(p1x, b1, p2x, b2, fx):  # pragma: no cover - compiled
    """Whether the pixel centre at ``fx`` of a row lies in the triangle (barycentrics l1 = p1x fx + b1, l2 alike)."""
    l1, l2 = p1x * fx + b1, p2x * fx + b2
    return l1 >= -EDGE and l2 >= -EDGE and l1 + l2 <= 1 + EDGE


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=FINITE_FASTMATH, inline="always")
def _row_span(p1x, b1, p2x, b2, x0, x1):  # pragma: no cover - compiled
    """The first and last pixel of a row whose centres the triangle covers, within [x0, x1] (empty: s0 > s1).

    Solved from the three edge inequalities, then settled by the exact test at both ends: testing every pixel of
    the bounding box instead mispredicts a branch at each crossing, which cost more than twice the drawing itself."""
    lo, hi = x0 + 0.5, x1 + 0.5
    for slope, offset, limit in ((p1x, b1, -EDGE), (p2x, b2, -EDGE), (-(p1x + p2x), -(b1 + b2), -1 - EDGE)):
        if slope > 1e-12:                            # slope * fx + offset >= limit
            lo = max(lo, (limit - offset) / slope)
        elif slope < -1e-12:
            hi = min(hi, (limit - offset) / slope)
    s0 = int(np.ceil(min(lo, x1 + 1.5) - 0.5))      # lo >= x0 + 0.5 and hi <= x1 + 0.5 already
    s1 = int(np.floor(max(hi, x0 - 0.5) - 0.5))
    while s0 <= s1 and not _covers(p1x, b1, p2x, b2, s0 + 0.5):
        s0 += 1
    while s0 > x0 and _covers(p1x, b1, p2x, b2, s0 - 0.5):
        s0 -= 1
    s1 = max(s1, s0 - 1)
    while s1 >= s0 and not _covers(p1x, b1, p2x, b2, s1 + 0.5):
        s1 -= 1
    while s1 < x1 and _covers(p1x, b1, p2x, b2, s1 + 1.5):
        s1 += 1
    return s0, s1


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _planes(plane, corners, bary, inv_w, uvs, dots):  # pragma: no cover - compiled
    """One triangle's screen planes of 1/w, u/w, v/w and cosine/w, from its barycentric planes ``bary``."""
    i0, i1, i2 = corners
    p1x, p1y, p1c, p2x, p2y, p2c = bary
    for k in range(4):
        if k == 0:
            q0, q1, q2 = inv_w[i0], inv_w[i1], inv_w[i2]
        elif k == 3:
            q0, q1, q2 = dots[i0] * inv_w[i0], dots[i1] * inv_w[i1], dots[i2] * inv_w[i2]
        else:
            q0, q1, q2 = uvs[i0, k - 1] * inv_w[i0], uvs[i1, k - 1] * inv_w[i1], uvs[i2, k - 1] * inv_w[i2]
        plane[3 * k] = p1x * (q1 - q0) + p2x * (q2 - q0)
        plane[3 * k + 1] = p1y * (q1 - q0) + p2y * (q2 - q0)
        plane[3 * k + 2] = q0 + p1c * (q1 - q0) + p2c * (q2 - q0)


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=True, inline="always")
def _bilinear(texture, x0, y0, x1, y1, ax, ay, c):  # pragma: no cover - compiled
    top = texture[y0, x0, c] * (1 - ax) + texture[y0, x1, c] * ax
    bottom = texture[y1, x0, c] * (1 - ax) + texture[y1, x1, c] * ax
    return np.floor(top * (1 - ay) + bottom * ay + 0.5)


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=True)
def _shade(hit, size, sides, planes, tex_size, textured, ambient, background, plain, rgb, mask, texels, shades,
           where):  # pragma: no cover - compiled
    """Colour every pixel: the background, or (perspective-correct, from the triangle's planes) the plain albedo
    times ambient + Lambert (the interpolated cosine, two-sided); with a texture, the texel position (edge texels
    repeated beyond the border) and the shade of each covered pixel go to ``texels``/``shades``/``where`` for
    _sample, and the count is returned. Two passes: sampling inside this branchy loop ran ~1.5x slower."""
    t_h, t_w = tex_size
    count = 0
    for py in range(size):
        fy = py + 0.5
        for px in range(size):
            pixel = py * size + px
            t = hit[pixel]
            if t < 0:
                rgb[pixel, 0], rgb[pixel, 1], rgb[pixel, 2] = background[0], background[1], background[2]
                continue
            fx = px + 0.5
            inv_w = 1.0 / (planes[t, 0] * fx + planes[t, 1] * fy + planes[t, 2])
            lambert = sides[t] * (planes[t, 9] * fx + planes[t, 10] * fy + planes[t, 11]) * inv_w
            shade = ambient + (1 - ambient) * min(max(lambert, 0.0), 1.0)
            mask[pixel] = True
            if textured:
                u = (planes[t, 3] * fx + planes[t, 4] * fy + planes[t, 5]) * inv_w
                v = (planes[t, 6] * fx + planes[t, 7] * fy + planes[t, 8]) * inv_w
                texels[count, 0] = min(max(u * t_w - 0.5, 0.0), t_w - 1.0)
                texels[count, 1] = min(max((1.0 - v) * t_h - 0.5, 0.0), t_h - 1.0)
                shades[count], where[count] = shade, pixel
                count += 1
            else:
                for c in range(3):
                    rgb[pixel, c] = np.uint8(min(max(plain[c] * shade, 0.0), 255.0))
    return count


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=True)
def _sample(texture, texels, shades, where, count, rgb):  # pragma: no cover - compiled
    """The covered pixels' colours: the texture sampled bilinearly at ``texels``, times their shades."""
    t_h, t_w = texture.shape[0], texture.shape[1]
    for k in range(count):
        x, y, shade, pixel = texels[k, 0], texels[k, 1], shades[k], where[k]
        x0, y0 = int(x), int(y)                                # non-negative, so truncation is the floor
        ax, ay = x - x0, y - y0
        x1, y1 = min(x0 + 1, t_w - 1), min(y0 + 1, t_h - 1)
        for c in range(3):
            value = _bilinear(texture, x0, y0, x1, y1, ax, ay, c)
            rgb[pixel, c] = np.uint8(min(max(value * shade, 0.0), 255.0))


def _surface(mesh: TexturedMesh) -> tuple[np.ndarray, np.ndarray, bool]:
    """(texture, uvs, textured) as the shader takes them: a contiguous RGB uint8 texture and float64 UVs."""
    if mesh.texture is None or mesh.uvs is None:
        return np.zeros((1, 1, 3), np.uint8), np.zeros((len(mesh.vertices), 2)), False
    texture = np.asarray(mesh.texture, np.uint8)
    texture = np.ascontiguousarray(np.dstack([texture] * 3) if texture.ndim == 2 else texture[:, :, :3])
    return texture, np.ascontiguousarray(mesh.uvs, np.float64), True


_scratch = threading.local()


@dataclass(frozen=True)
class _Scratch:
    """One thread's per-pixel working buffers, reused: fresh pages cost more than the drawing."""

    best: np.ndarray           # (P,) float32 nearness of the front-most triangle (32-bit: memory traffic is the cost)
    hit: np.ndarray            # (P,) int32 its index, -1 for none
    texels: np.ndarray         # (P, 2) float64 texture position of each covered pixel, in covering order
    shades: np.ndarray         # (P,) float64 its shade
    where: np.ndarray          # (P,) int32 its pixel


SCRATCH_SIZES = 4              # frame sizes a thread keeps buffers for (a job draws vis tiles, clip tiles and 512^2)


def _buffers(pixels: int) -> _Scratch:
    kept: dict[int, _Scratch] = getattr(_scratch, "by_size", None) or {}
    scratch = kept.pop(pixels, None)
    if scratch is None:
        scratch = _Scratch(np.empty(pixels, np.float32), np.empty(pixels, np.int32), np.empty((pixels, 2)),
                           np.empty(pixels), np.empty(pixels, np.int32))
    kept[pixels] = scratch                       # most recently used last; the oldest size goes first
    while len(kept) > SCRATCH_SIZES:
        kept.pop(next(iter(kept)))
    _scratch.by_size = kept
    return scratch


def render(mesh: TexturedMesh, size: int = 512, view: View = View(), background=BACKGROUND) -> Rendered:
    vertices = np.ascontiguousarray(mesh.vertices, np.float64)
    triangles = np.ascontiguousarray(mesh.triangles, dtype=np.int64)
    count, pixels = len(vertices), size * size
    xy, nearness, inv_w, dots = np.empty((count, 2)), np.empty(count), np.empty(count), np.empty(count)
    _project(vertices, np.ascontiguousarray(mesh.normals, np.float64), LIGHT_DIRECTION, size,
             float(view.yaw_degrees), view.perspective, float(view.fov_degrees), float(view.fill), xy, nearness,
             inv_w, dots)
    scratch = _buffers(pixels)
    scratch.best.fill(-np.inf)
    scratch.hit.fill(-1)
    texture, uvs, textured = _surface(mesh)
    sides, planes = np.ones(len(triangles)), np.empty((len(triangles), 12))
    _rasterize(xy, nearness, triangles, size, scratch.best, scratch.hit, sides, planes, inv_w, uvs, dots)
    rgb, mask = np.empty((pixels, 3), np.uint8), np.zeros(pixels, np.bool_)
    covered = _shade(scratch.hit, size, sides, planes, texture.shape[:2], textured, AMBIENT,
                     np.asarray(background, np.uint8), np.asarray(PLAIN_ALBEDO, np.float64), rgb, mask,
                     scratch.texels, scratch.shades, scratch.where)
    _sample(texture, scratch.texels, scratch.shades, scratch.where, covered, rgb)
    return Rendered(rgb.reshape(size, size, 3), mask.reshape(size, size))


def warm_up() -> None:
    """Compile (or load from the cache) the kernels now, so the first job does not pay for it."""
    vertices = np.array([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [0.0, 1.0, 0.0]])
    normals = np.tile([0.0, 0.0, 1.0], (3, 1))
    uvs = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, 1.0]])
    for texture in (np.full((2, 2, 3), 128, np.uint8), None):
        render(TexturedMesh(vertices, np.array([[0, 1, 2]]), uvs, normals, texture), 8)
