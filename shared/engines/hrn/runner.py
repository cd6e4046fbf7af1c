"""The only module that touches ModelScope / torch: builds HRN's pipeline and runs it on one crop.

Everything is imported inside functions, so importing this module costs nothing on machines without the GPU stack.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from face3d.shared.engines.hrn.convert import HrnPose
from face3d.shared.errors import EngineUnavailable

HRN_MODEL_ID = "damo/cv_resnet50_face-reconstruction"
HRN_REVISION = "v2.0.0-HRN"
MODEL_DIR_ENV = "HRN_MODEL_DIR"

# Imported by the pipeline or the model code it loads (see convert.py for the files read).
REQUIRED_MODULES = ("torch", "torchvision", "modelscope", "tensorflow", "face_alignment", "kornia", "nvdiffrast",
                    "pytorch3d", "scipy", "skimage", "numba", "albumentations")
# Opened by FaceReconstructionPipeline.__init__ / FaceReconModel.__init__ from the model directory.
REQUIRED_WEIGHT_FILES = ("configuration.json", "pytorch_model.pt", "large_base_net.pth",
                         "retinaface_resnet50_2020-07-20_old_torch.pth", "de_retouching_model.pth",
                         "segment_face.pb", "assets/bfm_uvs2.npy", "assets/similarity_Lm3D_all.mat",
                         "assets/BBRegressorParam_r.mat", "face_alignment/s3fd-619a316812.pth",
                         "face_alignment/3DFAN4-4a694010b9.zip", "face_alignment/depth-6c4283c0e0.zip")

Runner = Callable[[np.ndarray], tuple[dict, HrnPose]]   # crop RGB uint8 -> (pipeline result, pose)


def missing_modules() -> list[str]:
    return [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def model_source(model_dir: str | os.PathLike | None = None) -> str:
    """A checked local model directory (argument or $HRN_MODEL_DIR), else the hub id (downloaded on first load)."""
    chosen = model_dir or os.environ.get(MODEL_DIR_ENV)
    if not chosen:
        return HRN_MODEL_ID
    folder = Path(chosen)
    if not folder.is_dir():
        raise EngineUnavailable(f"HRN weights not found: {MODEL_DIR_ENV}={folder} is not a directory")
    missing = [name for name in REQUIRED_WEIGHT_FILES if not (folder / name).is_file()]
    if missing:
        raise EngineUnavailable(
            f"HRN weights incomplete in {folder}: missing {', '.join(missing)} "
            f"(download {HRN_MODEL_ID} revision {HRN_REVISION} there)"
        )
    return str(folder)


def build_pipeline_runner(source: str) -> Runner:
    from modelscope.pipelines import pipeline
    from modelscope.utils.constant import Tasks

    extra = {} if Path(source).is_dir() else {"model_revision": HRN_REVISION}
    try:
        pipe = pipeline(Tasks.face_reconstruction, model=source, device="gpu", **extra)
    except Exception as exc:  # hub, weights and CUDA failures all surface here, with many exception types
        raise EngineUnavailable(f"HRN pipeline could not be built from {source}: {exc}") from exc
    return PipelineRunner(pipe)


class PipelineRunner:
    """Runs the pipeline and collects the pose and alignment it computes but does not return."""

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe
        self._align: np.ndarray | None = None
        original = pipe.read_data

        def read_data(img, lm, lm3d_std, to_tensor=True, image_res=1024):
            self._align = _alignment(img, lm, lm3d_std)
            return original(img, lm, lm3d_std, to_tensor=to_tensor, image_res=image_res)

        # An instance attribute shadows the method: predict_base calls self.read_data(...).
        pipe.read_data = read_data

    def __call__(self, crop_rgb: np.ndarray) -> tuple[dict, HrnPose]:
        from PIL import Image

        self._align = None
        raw = self._pipe(Image.fromarray(crop_rgb))
        if self._align is None:
            raise RuntimeError("HRN returned without aligning a face")
        model = self._pipe.model
        coeffs = model.pred_coeffs_dict
        pose = HrnPose(
            angles=_numpy(coeffs["angle"])[0],
            translation=_numpy(coeffs["trans"])[0],
            align=self._align,
            keypoints=_numpy(model.facemodel_front.keypoints).astype(np.int64),
        )
        return raw, pose


def _alignment(img: np.ndarray, lm: np.ndarray, lm3d_std: np.ndarray) -> np.ndarray:
    """The trans_params that read_data computes and drops (it flips y in place, so work on a copy)."""
    from modelscope.models.cv.face_reconstruction.utils import align_img
    from PIL import Image

    lm_y_up = np.array(lm, dtype=np.float64, copy=True)
    lm_y_up[:, -1] = img.shape[0] - 1 - lm_y_up[:, -1]
    trans_params, _, _, _ = align_img(Image.fromarray(np.asarray(img[..., ::-1], dtype=np.uint8)), lm_y_up, lm3d_std)
    return np.asarray(trans_params, dtype=np.float64)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)
