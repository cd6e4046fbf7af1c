"""HRN's pipeline through ModelScope's real builder, with the modelscope our `gpu` extra pins (modelscope_probe.py).

modelscope is installed for the session, without dependencies, into a cache folder (never into the venv: the
engine's "packages missing" path must stay testable here, and modelscope's [framework] extra would pull torch).
FACE3D_MODELSCOPE_SPEC overrides the requirement, e.g. ``modelscope==1.40.2`` to watch the TypeError come back.
Without PyPI the test skips loudly, except under CI, where it fails.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from face3d.shared.engines.hrn.runner import FACE_ALIGNMENT_FILES, REQUIRED_WEIGHT_FILES, check_modelscope_version
from face3d.shared.errors import EngineUnavailable

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("modelscope_probe.py")
# What modelscope's builder imports besides the standard library and this venv: its own base dependency filelock,
# two of its [framework] extra, and (1.39+) modelscope-hub. All pure Python.
SUPPORT = ("filelock>=3.9", "addict>=2.4", "simplejson>=3.3", "modelscope-hub>=0.4.6")


def gpu_extra_requirement(name: str) -> Requirement:
    text = (ROOT / "pyproject.toml").read_text()
    extra = re.search(r"^gpu = \[(.*?)\]$", text, re.M | re.S).group(1)
    found = [Requirement(r) for r in re.findall(r'"([^"]+)"', extra) if Requirement(r).name == name]
    assert len(found) == 1, f"the gpu extra should name {name} once"
    return found[0]


def modelscope_spec() -> str:
    pinned = gpu_extra_requirement("modelscope")
    return os.environ.get("FACE3D_MODELSCOPE_SPEC") or f"modelscope{pinned.specifier}"


@pytest.fixture(scope="session")
def modelscope_target() -> Path:
    spec = modelscope_spec()
    target = Path(tempfile.gettempdir()) / "face3d-test-modelscope" / hashlib.sha1(spec.encode()).hexdigest()[:12]
    if not (target / ".complete").is_file():
        command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                   "--target", str(target), "--upgrade", spec, *SUPPORT]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            message = f"*** could not pip install {spec} for the builder test: {result.stderr[-800:]} ***"
            if os.environ.get("CI"):
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        (target / ".complete").write_text(spec)
    return target


def lay_out_model_folder(folder: Path) -> None:
    """The 16 files HRN opens, empty but for configuration.json (ModelScope's model card layout)."""
    for name in REQUIRED_WEIGHT_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(name.encode())
    (folder / "configuration.json").write_text(json.dumps({
        "framework": "pytorch", "task": "face-reconstruction",
        "model": {"type": "face_reconstruction"}, "pipeline": {"type": "resnet50-face-reconstruction"}}))


def run_probe(target: Path, model_dir: Path, hub_dir: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)]),
           "MODELSCOPE_CACHE": str(hub_dir.parent / "modelscope-cache"), "HOME": str(hub_dir.parent)}
    result = subprocess.run([sys.executable, str(PROBE), str(model_dir), str(hub_dir)], capture_output=True,
                            text=True, timeout=300, env=env, cwd=hub_dir.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("layout", ["damo/cv_resnet50_face-reconstruction", "models/cv_resnet50_face-reconstruction"])
def test_the_pinned_modelscope_builds_hrns_pipeline_without_the_trust_remote_code_type_error(
        modelscope_target, tmp_path, layout):
    """damo/...: the documented layout. models/...: the old default, whose parent 1.37-1.39 do not trust."""
    model_dir = tmp_path / layout
    lay_out_model_folder(model_dir)
    report = run_probe(modelscope_target, model_dir, tmp_path / "torch-hub")
    assert report["outcome"] == "reached", f"modelscope {report['modelscope']}: {report}"
    assert report["class"] == "FaceReconstructionPipeline"
    assert report["kwargs"] == {"model": str(model_dir), "device": "gpu"} and report["args"] == []
    for name in FACE_ALIGNMENT_FILES:     # where face-alignment looks, whatever TORCH_HOME says
        assert (tmp_path / "torch-hub" / "checkpoints" / name).read_bytes() == f"face_alignment/{name}".encode()


def test_the_gpu_extra_pins_a_modelscope_that_builds_hrn():
    specifier = gpu_extra_requirement("modelscope").specifier
    assert Version("1.36.3") in specifier
    assert all(Version(v) not in specifier for v in ("1.37.0", "1.39.0", "1.40.2", "2.0.0"))
    assert gpu_extra_requirement("modelscope").extras == {"framework"}


@pytest.mark.parametrize("version", ["1.37.0", "1.39.0", "1.40.2"])
def test_a_modelscope_that_passes_trust_remote_code_is_refused_with_the_fix(version):
    with pytest.raises(EngineUnavailable, match=r"modelscope\[framework\]>=1.20,<1.37"):
        check_modelscope_version(version)
    check_modelscope_version("1.36.3")
