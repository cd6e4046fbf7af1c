"""The real HRN end to end on one photo: runs only where CUDA, the GPU packages and the weights are present."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from face3d.shared.engines.hrn.runner import MODEL_DIR_ENV, missing_modules

PHOTO = Path(__file__).resolve().parents[2] / ".." / "shared" / "faces" / "a_frontal_obama.jpg"


def why_not_runnable() -> str | None:
    missing = missing_modules()
    if missing:
        return f"HRN GPU stack not installed (missing: {', '.join(missing)})"
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device"
    if not os.environ.get(MODEL_DIR_ENV):
        return f"set {MODEL_DIR_ENV} to a local copy of damo/cv_resnet50_face-reconstruction (v2.0.0-HRN)"
    return None


@pytest.mark.gpu
def test_hrn_reconstructs_the_frontal_photo_end_to_end():
    reason = why_not_runnable()
    if reason:
        pytest.skip(reason)
    from face3d.shared.engines.hrn import HrnEngine
    from face3d.shared.imaging import load_image
    from face3d.shared.engines.base import Options

    photo = load_image(PHOTO)
    result = HrnEngine().reconstruct(photo, Options(texture_size=256))
    assert len(result.faces) == 1
    face = result.faces[0]
    assert face.vertices.shape == (35709, 3) and face.triangles.min() == 0
    assert 0.1 < np.ptp(face.vertices[:, 0]) < 0.25                        # a face is 10-25 cm wide
    assert abs(face.yaw) < 20
    center = face.camera.project(face.vertices).mean(axis=0)
    x0, y0, x1, y1 = face.bbox
    assert x0 < center[0] < x1 and y0 < center[1] < y1
    assert face.texture.shape == (256, 256, 3) and face.texture.mean() > 30
