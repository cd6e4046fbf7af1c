"""Engine interface and registry. Engines are named by reference ("module:Class", as cog loads predictors), so
the registry imports nothing until one is asked for; each is created and loaded once per process (after any fork)."""
from __future__ import annotations

import importlib

from face3d.shared.engines.base import Camera, Engine, Face, Options, Photo, Reconstruction
from face3d.shared.errors import EngineUnavailable

ENGINES: dict[str, str] = {
    "cpu": "face3d.shared.engines.cpu:CpuEngine",
    "hrn": "face3d.shared.engines.hrn:HrnEngine",
}
_ENGINES: dict[str, Engine] = {}


def engine_names() -> tuple[str, ...]:
    return tuple(ENGINES)


def get_engine(name: str) -> Engine:
    """Return the process-wide engine instance for ``name``, loading it on first use (after any fork)."""
    if name not in _ENGINES:
        if name not in ENGINES:
            raise EngineUnavailable(f"unknown engine {name!r}; choose one of {', '.join(engine_names())}")
        module, _, cls = ENGINES[name].partition(":")
        engine: Engine = getattr(importlib.import_module(module), cls)()
        engine.load()
        _ENGINES[name] = engine
    return _ENGINES[name]


__all__ = ["Engine", "Face", "Options", "Photo", "Reconstruction", "Camera", "ENGINES", "get_engine", "engine_names"]
