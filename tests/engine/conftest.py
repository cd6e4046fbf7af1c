"""Shared fixtures for the engine tests: the repository root on sys.path, the test photos, one loaded engine."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FACES = ROOT / ".." / "shared" / "faces"


def photo_path(name: str) -> Path:
    path = FACES / name
    if not path.exists():
        pytest.fail(f"test photo missing: {path} (the photos live in ../shared/faces beside the repository)")
    return path


@pytest.fixture(scope="session")
def cpu_engine():
    from shared.engines.cpu import CpuEngine

    engine = CpuEngine()
    engine.load()
    yield engine
    engine.close()
