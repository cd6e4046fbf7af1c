"""The format validators the tests run: Khronos' glTF validator (npm gltf-validator, through node) and USD's own
validators (what `usdchecker --useNewValidationFramework --arkit` runs; usd-core's wheel ships the validators but not
the usdchecker program). Missing tools skip loudly here and fail in CI, where .ci/run installs them."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GLTF_SCRIPT = ROOT / "web" / "validate-gltf.mjs"
GLTF_PACKAGE = ROOT / "web" / "node_modules" / "gltf-validator"


def missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(f"*** {reason} ***")


def gltf_reports(paths: list[Path]) -> list[dict]:
    """One report per file: numErrors, numWarnings, numInfos, numHints and the messages."""
    if shutil.which("node") is None or not GLTF_PACKAGE.is_dir():
        missing("the glTF validator needs node and `npm ci --prefix web` (web/package.json devDependencies)")
    result = subprocess.run(["node", str(GLTF_SCRIPT), *map(str, paths)], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def require_usd() -> None:
    from face3d.shared.artifacts.usdz import usdz_available

    if not usdz_available():
        missing("usd-core is not installed (pip install '.[usd]'; the dev extra includes it)")


def usd_errors(path: Path) -> list[str]:
    """Errors and warnings of every USD validator that `usdchecker --arkit` applies to a .usdz package."""
    require_usd()
    from pxr import Usd, UsdValidation

    registry = UsdValidation.ValidationRegistry()
    names = [meta.name for meta in registry.GetAllValidatorMetadata()
             if meta.name != "usdUtilsValidators:RootPackageValidator"]       # usdchecker drops it unless -p
    context = UsdValidation.ValidationContext(registry.GetOrLoadValidatorsByName(names))
    stage = Usd.Stage.Open(str(path))
    assert stage, f"usd-core cannot open {path}"
    assert len(names) >= 20, names                                           # the validators did load
    return [error.GetErrorAsString() for error in context.Validate(stage)
            if error.GetType() != UsdValidation.ValidationErrorType.Info]
