"""infra/Dockerfile.gpu and the worker-gpu service against the facts HRN's stack imposes (no Docker engine here).

Facts, read from the upstream sources (issue 17):
- pytorch3d's tag is ``V0.7.8``, capital V (its tags: v0.7.6, v0.7.7, V0.7.8, v0.7.9); V0.7.8's INSTALL.md supports
  PyTorch 2.1.0-2.4.1;
- nvdiffrast v0.4.0 compiles its CUDA plugin at install time; v0.3.3 JIT-compiles it on first use into
  TORCH_EXTENSIONS_DIR;
- V100 and T4 are sm_70 / sm_75: without them pytorch3d has no kernel image for those GPUs.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from face3d.shared.engines.hrn.runner import HRN_MODEL_ID
from tests.infra.test_infra_files import dockerfile_instructions

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "infra" / "Dockerfile.gpu"
PYTORCH3D_TORCH = {"2.1.0", "2.1.1", "2.1.2", "2.2.0", "2.2.1", "2.2.2", "2.3.0", "2.3.1", "2.4.0", "2.4.1"}
ARCH_LIST = "7.0;7.5;8.0;8.6;8.9;9.0+PTX"
MODEL_DIR = f"/models/{HRN_MODEL_ID}"


@pytest.fixture(scope="module")
def instructions() -> list[tuple[str, str]]:
    return dockerfile_instructions(DOCKERFILE)


@pytest.fixture(scope="module")
def args(instructions) -> dict[str, str]:
    pairs = (a.split("=", 1) for k, a in instructions if k == "ARG" and "=" in a)
    return {name: value.strip('"') for name, value in pairs}


def runs(instructions) -> list[str]:
    return [a for k, a in instructions if k == "RUN"]


def run_installing(instructions, what: str) -> str:
    found = [r for r in runs(instructions) if what in r and "pip install" in r]
    assert len(found) == 1, f"one RUN should install {what}"
    return found[0]


def test_pytorch3d_is_built_from_its_capital_v_tag_for_every_gpu_generation(instructions, args):
    assert args["PYTORCH3D_REF"] == "V0.7.8" and args["TORCH_CUDA_ARCH_LIST"] == ARCH_LIST
    run = run_installing(instructions, "pytorch3d")
    assert "git+https://github.com/facebookresearch/pytorch3d.git@${PYTORCH3D_REF}" in run
    assert 'TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST}"' in run and "FORCE_CUDA=1" in run
    assert "--no-build-isolation" in run and 'MAX_JOBS="${MAX_JOBS}"' in run


def test_the_parallel_compile_is_bounded(args):
    assert 1 <= int(args["MAX_JOBS"]) <= 8


def test_torch_is_one_pytorch3d_supports_in_its_cuda_12_1_build_and_the_gpu_extra_agrees(instructions, args):
    assert args["TORCH_VERSION"] == "2.4.1" and args["TORCH_VERSION"] in PYTORCH3D_TORCH
    assert args["TORCHVISION_VERSION"] == "0.19.1"                    # torchvision's release for torch 2.4.1
    assert args["TORCH_INDEX_URL"].endswith("/whl/cu121")
    base = next(a for k, a in instructions if k == "FROM")
    assert base.startswith("nvidia/cuda:12.1.")
    extra = re.search(r"^gpu = \[(.*?)\]$", (ROOT / "pyproject.toml").read_text(), re.M | re.S).group(1)
    assert '"torch==2.4.1"' in extra and '"torchvision==0.19.1"' in extra


def test_nvdiffrast_needs_no_compiler_at_run_time_or_builds_onto_a_volume(instructions, args):
    run = run_installing(instructions, "nvdiffrast")
    assert "git+https://github.com/NVlabs/nvdiffrast.git@${NVDIFFRAST_REF}" in run
    if args["NVDIFFRAST_REF"] != "v0.4.0":
        assert args["NVDIFFRAST_REF"] == "v0.3.3"
        env = " ".join(a for k, a in instructions if k == "ENV")
        assert "TORCH_EXTENSIONS_DIR=" in env, "v0.3.3 JIT-builds on first use: TORCH_EXTENSIONS_DIR on a volume"


def test_every_pip_install_keeps_the_constraints_and_pip_check_closes_the_installs(instructions):
    installs = [r for r in runs(instructions) if "pip install" in r and "--upgrade pip" not in r]
    assert installs and all("-c /opt/constraints.txt" in r for r in installs)
    last = runs(instructions).index(installs[-1])
    assert "pip check" in installs[-1] and ".[gpu,postgres]" in installs[-1]
    assert not any("pip install" in r for r in runs(instructions)[last + 1:])


def test_one_opencv_distribution_provides_all_three_names(instructions):
    constraints = next(r for r in runs(instructions) if "/opt/constraints.txt" in r and "printf" in r)
    for name in ("opencv-contrib-python==", "opencv-python==", "opencv-python-headless==", "torch==", "numpy<2"):
        assert name in constraints
    shims = next(r for r in runs(instructions) if "opencv-shims" in r)
    assert 'dependencies = ["opencv-contrib-python==%s"]' in shims and "py-modules = []" in shims


def test_the_weights_folder_is_the_documented_one_and_compose_bind_mounts_it(instructions):
    env = " ".join(a for k, a in instructions if k == "ENV")
    assert f"HRN_MODEL_DIR={MODEL_DIR}" in env
    service = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["worker-gpu"]
    assert service["environment"]["HRN_MODEL_DIR"] == MODEL_DIR
    assert service["volumes"] == ["./models:/models:ro"]
    assert "--concurrency" in service["command"] and service["command"][-1] == "1"
    snapshot = f"modelscope download --model {HRN_MODEL_ID} --revision v2.0.0-HRN --local_dir ./models/{HRN_MODEL_ID}"
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert snapshot in readme and snapshot in " ".join((ROOT / "docker-compose.yml").read_text()
                                                       .replace("#", " ").replace("\\", " ").split())


def test_the_image_context_holds_every_file_the_dockerfile_copies(instructions):
    allowed = [line[1:] for line in (ROOT / "infra" / "Dockerfile.gpu.dockerignore").read_text().splitlines()
               if line.startswith("!")]
    for keyword, value in instructions:
        if keyword == "COPY":
            for source in shlex.split(value)[:-1]:
                assert any(source == a or source.startswith(a + "/") for a in allowed), f"{source} is ignored"
