"""Shared fixtures for the engine tests: the test photos and one loaded engine."""
from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FACES = ROOT / ".." / "shared" / "faces"


def photo_path(name: str) -> Path:
    path = FACES / name
    if not path.exists():
        pytest.fail(f"test photo missing: {path} (the photos live in ../shared/faces beside the repository)")
    return path


@pytest.fixture(scope="session")
def cpu_engine():
    from face3d.shared.engines.cpu import CpuEngine

    engine = CpuEngine()
    engine.load()
    yield engine
    engine.close()
