"""Build HRN's pipeline through ModelScope's real builder, with the heavy libraries faked. Run as a subprocess:

    python modelscope_probe.py MODEL_DIR TORCH_HUB_DIR      (modelscope importable, e.g. on PYTHONPATH)

Real: modelscope's ``pipeline()`` (builder.py), its registry and ``build_from_cfg`` (utils/registry.py), its
prebuilt AST index and requirement check, the real ``FaceReconstructionPipeline`` class (its module is imported),
and our ``runner.checked_model_dir`` / ``runner._build_pipeline``. Fake: torch, tensorflow, face_alignment and the
other GPU-stack modules (any attribute is a stub class; ``torch`` and ``tensorflow`` get dist-info metadata so
modelscope counts them installed), and ``modelscope.msdatasets`` (datasets/pandas, unused by HRN).
``Pipeline.__init__`` is replaced by a sentinel: the real one would load the weights. Reaching it means
``FaceReconstructionPipeline.__init__(self, model, device)`` accepted the arguments the builder passed; the
``trust_remote_code`` TypeError of modelscope 1.37+ happens before that, when Python binds them.

Prints one JSON line: {"outcome": "reached" | "raised", ...}. Connections off this machine are refused.
"""
from __future__ import annotations

import abc
import importlib.abc
import importlib.machinery
import json
import socket
import sys
import tempfile
import types
from pathlib import Path

FAKE_ROOTS = {"torch", "torchvision", "tensorflow", "face_alignment", "datasets", "kornia", "nvdiffrast",
              "pytorch3d", "albumentations", "skimage", "numba", "einops"}
FAKE_PACKAGES = ("modelscope.msdatasets",)
FAKE_DISTRIBUTIONS = {"torch": "2.4.1", "tensorflow-cpu": "2.17.1"}


class _StubMeta(abc.ABCMeta):          # ABCMeta: modelscope's TorchModel mixes an ABC with torch.nn.Module
    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return stub_class(f"{cls.__name__}.{name}")


class Stub(metaclass=_StubMeta):
    def __init__(self, *args, **kwargs) -> None:
        pass

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return Stub()

    def __call__(self, *args, **kwargs):
        return Stub()


def stub_class(name: str) -> type:
    return _StubMeta(name, (Stub,), {})


class FakeModule(types.ModuleType):
    __version__ = "2.4.1"

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return stub_class(f"{self.__name__}.{name}")


class FakeFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in FAKE_ROOTS or fullname.startswith(FAKE_PACKAGES):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = FakeModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module) -> None:
        pass


def install_fakes(torch_hub_dir: Path) -> None:
    sys.meta_path.insert(0, FakeFinder())
    metadata = Path(tempfile.mkdtemp(prefix="fake-dists-"))
    for name, version in FAKE_DISTRIBUTIONS.items():
        info = metadata / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    sys.path.append(str(metadata))
    import torch.hub

    torch.hub.get_dir = lambda: str(torch_hub_dir)


def refuse_remote_connections() -> None:
    original = socket.socket.connect

    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise OSError(f"modelscope_probe: no network beyond 127.0.0.1 ({address[0]})")
        return original(self, address)

    socket.socket.connect = connect


class ReachedPipelineInit(Exception):
    pass


def main(model_dir: str, torch_hub_dir: str) -> dict:
    refuse_remote_connections()
    install_fakes(Path(torch_hub_dir))
    import modelscope
    import modelscope.pipelines.base as base

    def sentinel(self, *args, **kwargs):
        raise ReachedPipelineInit(json.dumps({"args": list(args), "kwargs": kwargs}))

    base.Pipeline.__init__ = sentinel
    from face3d.shared.engines.hrn.runner import _build_pipeline, checked_model_dir

    report = {"modelscope": modelscope.__version__}
    try:
        _build_pipeline(checked_model_dir(Path(model_dir)))
    except ReachedPipelineInit as reached:
        # build_from_cfg re-raises as type(e)(f"{cls.__name__}: {e}"): the JSON follows the class name
        text = str(reached)
        return {**report, "outcome": "reached", "class": text.split(":", 1)[0], **json.loads(text.split(": ", 1)[1])}
    except Exception as exc:
        return {**report, "outcome": "raised", "type": type(exc).__name__, "message": str(exc)}
    return {**report, "outcome": "returned"}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
