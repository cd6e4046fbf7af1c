"""The only module that touches ModelScope / torch: builds HRN's pipeline and runs it on one crop.

Everything is imported inside functions, so importing this module costs nothing on machines without the GPU stack.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np

from face3d.shared.engines.hrn.convert import HrnPose
from face3d.shared.engines.hrn.failures import HrnNoFace, describe, is_time_limit, no_face_signal
from face3d.shared.errors import EngineUnavailable

HRN_MODEL_ID = "damo/cv_resnet50_face-reconstruction"
HRN_REVISION = "v2.0.0-HRN"
MODEL_DIR_ENV = "HRN_MODEL_DIR"
# modelscope 1.37+ passes trust_remote_code= to FaceReconstructionPipeline(model, device), which takes no such
# argument: 1.39.0 pipelines/builder.py:259 whenever the folder's parent is not named damo/iic, 1.40.2
# builder.py:276 always (utils/registry.py:207-213 drops it only for classes outside modelscope). 1.36.3 builds.
# tests/hrn/test_hrn_modelscope_builder.py, run against each release: 1.37.0, 1.40.1 and 1.40.2 fail on both
# layouts, 1.37.1-1.40.0 on a folder whose parent is not damo/iic.
FIRST_MODELSCOPE_PASSING_TRUST_REMOTE_CODE = (1, 37)

# Imported by the pipeline or the model code it loads.
REQUIRED_MODULES = ("torch", "torchvision", "modelscope", "tensorflow", "face_alignment", "kornia", "nvdiffrast",
                    "pytorch3d", "scipy", "skimage", "numba", "albumentations", "einops")
FACE_ALIGNMENT_FILES = ("s3fd-619a316812.pth", "3DFAN4-4a694010b9.zip", "depth-6c4283c0e0.zip")
# Every file HRN opens from its model folder (modelscope 1.36.3 sources):
REQUIRED_WEIGHT_FILES = (
    "configuration.json",                              # pipelines/builder.py: read_config
    "pytorch_model.pt",                                # face_reconstruction_pipeline.py:67,88
    "large_base_net.pth",                              # :74
    "retinaface_resnet50_2020-07-20_old_torch.pth",    # :78-82
    "segment_face.pb",                                 # :116-118
    "de_retouching_model.pth",                         # models/facerecon_model.py:58
    "assets/similarity_Lm3D_all.mat",                  # utils.py:369 (load_lm3d, pipeline :127)
    "assets/BBRegressorParam_r.mat",                   # pipeline :128-129
    "assets/BFM_model_front.mat",                      # models/bfm.py:45-47 (else it tries to rebuild it from BFM09)
    "assets/bfm_tex_mean2.npy",                        # bfm.py:63
    "assets/bfm_texmap_base2.npy",                     # bfm.py:64
    "assets/template_bfm.obj",                         # bfm.py:70
    "assets/bfm_uvs2.npy",                             # bfm.py:71, facerecon_model.py:89
    *(f"face_alignment/{name}" for name in FACE_ALIGNMENT_FILES),   # pipeline :97-105
)

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
    return str(checked_model_dir(Path(chosen)))


def checked_model_dir(folder: Path) -> Path:
    """``folder`` if it holds all 16 files HRN opens; else EngineUnavailable naming the missing ones."""
    if not folder.is_dir():
        raise EngineUnavailable(f"HRN weights not found: {MODEL_DIR_ENV}={folder} is not a directory")
    missing = [name for name in REQUIRED_WEIGHT_FILES if not (folder / name).is_file()]
    if missing:
        raise EngineUnavailable(
            f"HRN weights incomplete in {folder}: missing {', '.join(missing)} "
            f"(download {HRN_MODEL_ID} revision {HRN_REVISION} there; see README, The GPU engine)"
        )
    return folder


def check_modelscope_version(version: str | None = None) -> None:
    """EngineUnavailable for a modelscope whose builder cannot build HRN (1.37 and later, see above)."""
    version = version or importlib.metadata.version("modelscope")
    numbers = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if numbers >= FIRST_MODELSCOPE_PASSING_TRUST_REMOTE_CODE:
        raise EngineUnavailable(
            f"modelscope {version} cannot build HRN's pipeline (it passes trust_remote_code to "
            "FaceReconstructionPipeline, which takes none): install modelscope[framework]>=1.20,<1.37")


def provide_face_alignment_weights(model_dir: Path, checkpoints: Path) -> None:
    """Copy face-alignment's weights where it looks for them: torch's hub dir, which follows TORCH_HOME and
    XDG_CACHE_HOME. HRN copies them only to ~/.cache/torch/hub/checkpoints (pipeline :93-105), so with either
    variable set face-alignment would try to download them."""
    checkpoints.mkdir(parents=True, exist_ok=True)
    for name in FACE_ALIGNMENT_FILES:
        target = checkpoints / name
        if not target.is_file() or target.stat().st_size != (model_dir / "face_alignment" / name).stat().st_size:
            shutil.copyfile(model_dir / "face_alignment" / name, target)


def build_pipeline_runner(source: str) -> Runner:
    """HRN's pipeline from a local model folder (or the hub id, downloaded first), wrapped as a Runner."""
    check_modelscope_version()
    try:
        model_dir = checked_model_dir(Path(source) if Path(source).is_dir() else _download(source))
        pipe = _build_pipeline(model_dir)
    except EngineUnavailable:
        raise
    except Exception as exc:  # hub, weights and CUDA failures all surface here, with many exception types
        if is_time_limit(exc):
            raise
        raise EngineUnavailable(f"HRN pipeline could not be built from {source}: {describe(exc)}") from exc
    return PipelineRunner(pipe)


def _download(model_id: str) -> Path:
    from modelscope.hub.snapshot_download import snapshot_download

    return Path(snapshot_download(model_id, revision=HRN_REVISION))


def _build_pipeline(model_dir: Path) -> Any:
    import torch.hub
    from modelscope.pipelines import pipeline
    from modelscope.utils.constant import Tasks

    provide_face_alignment_weights(model_dir, Path(torch.hub.get_dir()) / "checkpoints")
    return pipeline(Tasks.face_reconstruction, model=str(model_dir), device="gpu")


class PipelineRunner:
    """Runs the pipeline and collects the pose and alignment it computes but does not return.

    HRN keeps each call's inputs and outputs on its model object (``set_input_base``/``set_input_hrn``,
    ``pred_coeffs_dict`` in models/facerecon_model.py) and we keep the alignment here: one call at a time.
    """

    def __init__(self, pipe: Any) -> None:
        self._pipe = pipe
        self._align: np.ndarray | None = None
        original = pipe.read_data

        def read_data(img, lm, lm3d_std, to_tensor=True, image_res=1024):
            if lm is None:          # prepare_data found no face (align_for_lm scale 0)
                raise HrnNoFace("HRN's landmark alignment found no face")
            self._align = _alignment(img, lm, lm3d_std)
            return original(img, lm, lm3d_std, to_tensor=to_tensor, image_res=image_res)

        # An instance attribute shadows the method: predict_base calls self.read_data(...).
        pipe.read_data = read_data

    def __call__(self, crop_rgb: np.ndarray) -> tuple[dict, HrnPose]:
        self._align = None
        raw = self._run(crop_rgb)
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

    def _run(self, crop_rgb: np.ndarray) -> dict:
        """One pipeline call; HRN's no-face failures (failures.py) become HrnNoFace, everything else propagates."""
        from PIL import Image

        try:
            return self._pipe(Image.fromarray(crop_rgb))
        except HrnNoFace:
            raise
        except Exception as exc:
            signal = no_face_signal(exc)
            if signal is None:
                raise
            raise HrnNoFace(f"HRN found no face ({signal})") from exc


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
