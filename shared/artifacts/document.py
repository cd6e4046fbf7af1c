"""result.json: one engine-neutral document describing every face and naming the files written beside it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from face3d.shared.artifacts.formats import units_of
from face3d.shared.artifacts.meshes import face_file_names
from face3d.shared.engines.base import Camera, Face, Options, Reconstruction

RESULT_VERSION = 1
AXES = ("metres; right-handed; +x = subject's left (image right), +y = up, +z = out of the face towards the camera; "
        "vertices in the face's own frame (pose removed); camera: photo_xy = scale * (R @ X)[:2] * [1, -1] + t")
PIXEL_DECIMALS, METRE_DECIMALS, ANGLE_DECIMALS = 2, 5, 2
# Non-face artifacts: document key -> file name.
SCENE_FILES = {"vis": "vis.png", "turntable_mp4": "turntable.mp4", "turntable_gif": "turntable.gif"}


def _rounded(values: np.ndarray, decimals: int) -> list:
    return np.round(np.asarray(values, dtype=np.float64), decimals).tolist()


def _camera(camera: Camera) -> dict:
    return {
        "model": "weak_perspective",
        "scale": round(float(camera.scale), 4),
        "rotation": _rounded(camera.rotation, 6),
        "translation": _rounded(camera.translation, PIXEL_DECIMALS),
    }


def _face(face: Face, present: set[str]) -> dict:
    files = {key: name for key, name in face_file_names(face.index).items() if name in present}
    return {
        "index": face.index,
        "bbox": _rounded(face.bbox, PIXEL_DECIMALS),
        "score": round(float(face.score), 4),
        "yaw": round(float(face.yaw), ANGLE_DECIMALS),
        "pitch": round(float(face.pitch), ANGLE_DECIMALS),
        "roll": round(float(face.roll), ANGLE_DECIMALS),
        "warnings": list(face.warnings),
        "texture_synthesized": None if face.texture is None else round(float(face.texture_synthesized), 4),
        "texture_mirrored": face.texture_mirrored,
        "occluded": face.occluded,
        "vertex_count": int(len(face.vertices)),
        "triangle_count": int(len(face.triangles)),
        "files": files,
        "landmarks_2d": _rounded(face.landmarks_2d, PIXEL_DECIMALS),
        "landmarks_3d": _rounded(face.landmarks_3d, METRE_DECIMALS),
        "camera": _camera(face.camera),
        **_landmarks_68(face),
    }


def _landmarks_68(face: Face) -> dict:
    if face.landmarks_68 is None:
        return {}
    document = {"landmarks_68": _rounded(face.landmarks_68, PIXEL_DECIMALS)}
    if face.landmarks_68_3d is not None:
        document["landmarks_68_3d"] = _rounded(face.landmarks_68_3d, METRE_DECIMALS)
    return document


def file_units(present: set[str], options: Options | None) -> dict[str, str]:
    """The length unit of each mesh format written (the JSON and glTF/USD stay in metres)."""
    suffixes = {Path(name).suffix.lstrip(".") for name in present}
    options = options or Options()
    return {output: units_of(output, options) for output in ("obj", "ply", "stl", "3mf") if output in suffixes}


def result_document(recon: Reconstruction, files: list[Path], options: Options | None = None) -> dict:
    """The result.json content for ``recon``; ``files`` are the artifacts written (only their names are used)."""
    present = {Path(f).name for f in files}
    return {
        "version": RESULT_VERSION,
        "engine": recon.engine,
        "image": {"width": int(recon.width), "height": int(recon.height)},
        "units": "metres",
        "file_units": file_units(present, options),
        "axes": AXES,
        "faces": [_face(face, present) for face in recon.faces],
        "files": {key: name for key, name in SCENE_FILES.items() if name in present},
        "warnings": list(recon.warnings),
        "timings_ms": {stage: round(float(ms), 1) for stage, ms in recon.timings_ms.items()},
    }


def write_document(document: dict, path: Path) -> Path:
    path.write_text(json.dumps(document, separators=(",", ":")))
    return path
