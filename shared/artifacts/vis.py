"""vis.png: the photo (512..1280 px wide) with each face's wireframe and index, above a grid of frontal renders:
each face textured, then (a second grid below) shaded without its texture, so the shape reads on its own."""
from __future__ import annotations

import math

import cv2
import numpy as np

from face3d.shared.artifacts.render import BACKGROUND, TexturedMesh, View, render
from face3d.shared.engines.base import Face, Reconstruction

MIN_WIDTH, MAX_WIDTH = 512, 1280
MIN_TILE, MAX_TILE = 160, 320
WIRE_COLOUR = (60, 255, 120)
LABEL_COLOUR = (255, 230, 40)


def _photo(recon: Reconstruction) -> tuple[np.ndarray, float]:
    if recon.photo is not None:
        rgb = recon.photo.rgb
    else:
        rgb = np.full((recon.height, recon.width, 3), 96, np.uint8)
    width = min(max(rgb.shape[1], MIN_WIDTH), MAX_WIDTH)
    scale = width / rgb.shape[1]
    size = (width, max(1, round(rgb.shape[0] * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(rgb), size, interpolation=interpolation), scale


def _label(image: np.ndarray, text: str, x: float, y: float, height_px: float) -> None:
    font_scale = float(np.clip(height_px / 40, 0.4, 1.2))
    thickness = max(1, round(font_scale * 2))
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
    x0 = int(np.clip(x, 0, image.shape[1] - w - 4))
    y0 = int(np.clip(y - h - base - 4, 0, image.shape[0] - h - base - 4))
    cv2.rectangle(image, (x0, y0), (x0 + w + 4, y0 + h + base + 4), (0, 0, 0), -1)
    cv2.putText(image, text, (x0 + 2, y0 + h + 2), cv2.FONT_HERSHEY_SIMPLEX, font_scale, LABEL_COLOUR, thickness,
                cv2.LINE_AA)


def _draw_wireframe(image: np.ndarray, face: Face, scale: float) -> None:
    shift = 4                                          # sub-pixel precision for cv2 drawing
    projected = face.camera.project(np.asarray(face.vertices, np.float64)) * scale
    corners = projected[face.triangles]
    ab, ac = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    facing = (ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]) < 0     # image y points down: front faces turn clockwise
    polygons = np.round(corners[facing] * (1 << shift)).astype(np.int32)
    overlay = image.copy()
    cv2.polylines(overlay, list(polygons), True, WIRE_COLOUR, 1, cv2.LINE_AA, shift)
    # A dense mesh on a small face would paint a solid blob: fade the wire as its ink (line length per
    # pixel of face) grows, never below a visible tint.
    x0, y0, x1, y1 = (v * scale for v in face.bbox)
    perimeter = np.linalg.norm(ab[facing], axis=1).sum() + np.linalg.norm(ac[facing], axis=1).sum()
    ink = perimeter / max((x1 - x0) * (y1 - y0), 1.0)
    alpha = float(np.clip(0.3 / max(ink, 1e-6), 0.2, 0.6))
    cv2.addWeighted(overlay, alpha, image, 1 - alpha, 0, dst=image)
    _label(image, str(face.index), x0, y0, y1 - y0)


def _render_grid(faces: list[Face], width: int, textured: bool = True) -> np.ndarray:
    tile = int(np.clip(width // max(len(faces), 1), MIN_TILE, min(MAX_TILE, width)))
    cols = max(1, width // tile)
    rows = math.ceil(len(faces) / cols)
    panel = np.empty((rows * tile, width, 3), np.uint8)
    panel[:] = BACKGROUND
    for i, face in enumerate(faces):
        y, x = (i // cols) * tile, (i % cols) * tile
        panel[y:y + tile, x:x + tile] = render(TexturedMesh.from_face(face, textured).for_frame(tile), tile, View()).rgb
        _label(panel, str(face.index), x + 4, y + 30, 24)
    return panel


def draw_vis(recon: Reconstruction) -> np.ndarray:
    image, scale = _photo(recon)
    for face in recon.faces:
        _draw_wireframe(image, face, scale)
    if not recon.faces:
        return image
    width = image.shape[1]
    return np.vstack([image, _render_grid(recon.faces, width), _render_grid(recon.faces, width, textured=False)])
