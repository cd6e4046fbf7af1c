"""Engine-neutral types: what every engine takes (Photo, Options) and returns (Reconstruction).

Coordinate conventions (all engines):
- Photo pixels: x right, y down, origin at the top-left corner of the upright (EXIF-applied) image.
- Mesh / 3D landmarks: metres, right-handed, +X to the subject's left (image right), +Y up, +Z out of the face
  towards the camera; origin near the centre of the head. Vertices are in the face's *own* frame (pose removed),
  so a mesh always looks straight down -Z at the viewer when rendered without rotation.
- Camera: weak perspective.  ``photo_xy = scale * (R @ X)[:2] * [1, -1] + [tx, ty]`` maps a mesh point X to photo
  pixels (the y flip turns Y-up into image-y-down).  R is the head rotation (yaw/pitch/roll, degrees, see Face).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from face3d.shared.options import ENGINE_DEFAULTS, OUTPUTS, UNITS

# progress(stage) at each stage; progress(stage, fraction) inside a long one (0..1 of that stage, e.g. render)
ProgressFn = Callable[..., None]

TEXTURED_OUTPUTS = frozenset({"obj", "glb", "vis", "video", "gif", "ply", "usdz"})    # the others need no texture


@dataclass(frozen=True)
class Options:
    """What one reconstruction is asked for. The public options' defaults, ranges and meaning are declared once in
    shared/options.py; the rest are the service's own (min_face_px, max_pixels, decode_memory_bytes)."""

    max_faces: int = ENGINE_DEFAULTS["max_faces"]
    min_face_px: int = 10          # smallest face box side, in photo pixels, that is reconstructed
    texture_size: int = ENGINE_DEFAULTS["texture_size"]
    video: bool = ENGINE_DEFAULTS["video"]
    face_videos: bool = ENGINE_DEFAULTS["face_videos"]
    frames: int = ENGINE_DEFAULTS["frames"]
    sweep_degrees: float = ENGINE_DEFAULTS["sweep_degrees"]
    render_size: int = ENGINE_DEFAULTS["render_size"]
    max_pixels: int = 50_000_000   # decoded pixel limit (decompression-bomb guard)
    decode_memory_bytes: int = 320 * 1024 ** 2   # DECODE_MEMORY_BYTES: larger photos are decoded reduced
    outputs: frozenset[str] = frozenset(ENGINE_DEFAULTS["outputs"])   # see OUTPUTS; "json" alone: no texture
    units: str | None = None       # OBJ / PLY / STL length unit, "m" or "mm" (default: mm closed, m open; glTF: m)
    solid: bool = ENGINE_DEFAULTS["solid"]   # close OBJ and PLY into a solid too (STL and 3MF always are)
    print_height_mm: float | None = None   # height of the solids (STL, 3MF, solid OBJ / PLY); default: life size

    def __post_init__(self) -> None:
        outputs = frozenset(self.outputs) | {"json"}          # a stored job's options carry a list
        unknown = sorted(outputs - set(OUTPUTS))
        if unknown:
            raise ValueError(f"unknown output(s): {', '.join(unknown)}")
        if self.units not in (None, *UNITS):
            raise ValueError(f"units must be one of {', '.join(UNITS)}")
        object.__setattr__(self, "outputs", outputs)

    def wants(self, output: str) -> bool:
        turntable = output not in ("video", "gif") or (self.video and self.frames > 0 and "video" in self.outputs)
        return output in self.outputs and turntable

    @property
    def needs_texture(self) -> bool:
        return bool(self.outputs & TEXTURED_OUTPUTS)


@dataclass
class Photo:
    """A decoded, upright RGB photo."""

    rgb: np.ndarray                 # (H, W, 3) uint8
    name: str = "photo"

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


@dataclass
class Camera:
    scale: float                    # pixels per metre
    rotation: np.ndarray            # (3, 3) head rotation
    translation: np.ndarray         # (2,) pixel offset

    def project(self, points: np.ndarray) -> np.ndarray:
        rotated = points @ self.rotation.T
        return self.scale * rotated[:, :2] * np.array([1.0, -1.0]) + self.translation


@dataclass
class Face:
    index: int
    bbox: tuple[float, float, float, float]      # x0, y0, x1, y1 in photo pixels
    score: float                                  # detection confidence 0..1
    yaw: float                                    # degrees, + = subject turns to their left (we see their right cheek)
    pitch: float                                  # degrees, + = looking up
    roll: float                                   # degrees, + = head tilted counter-clockwise in the image
    vertices: np.ndarray                          # (N, 3) float32, metres, face frame (see module doc)
    triangles: np.ndarray                         # (M, 3) int32, counter-clockwise seen from outside
    uvs: np.ndarray                               # (N, 2) float32 in [0, 1], v = 0 at the bottom of the texture
    normals: np.ndarray                           # (N, 3) float32, unit
    texture: np.ndarray | None                    # (T, T, 3) uint8 RGB, row 0 = top (v = 1); None if not asked for
    texture_synthesized: float                    # share of the surface colour not seen in the photo (mirrored/filled)
    landmarks_2d: np.ndarray                      # (K, 2) photo pixels
    landmarks_3d: np.ndarray                      # (K, 3) metres, face frame
    camera: Camera
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, object] = field(default_factory=dict)
    landmarks_68: np.ndarray | None = None        # (68, 2) photo pixels, iBUG / dlib order (jaw on the true jaw)
    landmarks_68_3d: np.ndarray | None = None     # (68, 3) metres, face frame, the same points
    texture_mirrored: float | None = None         # share of the surface colour taken from the mirror image
    occluded: float | None = None                 # share of the face found covered by something (0: nothing)


@dataclass
class Reconstruction:
    engine: str
    width: int
    height: int
    faces: list[Face]
    warnings: list[str] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    photo: Photo | None = None                    # the (possibly enhanced) photo the faces were taken from


class Engine(Protocol):
    name: str

    def load(self) -> None:
        """Load weights; called once per process, after any fork."""

    def reconstruct(self, photo: Photo, options: Options, progress: ProgressFn | None = None) -> Reconstruction:
        """Find and reconstruct every face. Raises NoFaceError when there is none."""
