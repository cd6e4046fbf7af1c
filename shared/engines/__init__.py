"""Engine interface and registry. Engines are created by name and loaded lazily, once per process."""
from __future__ import annotations

from face3d.shared.engines.base import Engine, Face, Options, Photo, Reconstruction, Camera

_ENGINES: dict[str, Engine] = {}


def engine_names() -> tuple[str, ...]:
    return ("cpu", "hrn")


def get_engine(name: str) -> Engine:
    """Return the process-wide engine instance for ``name``, loading it on first use (after any fork)."""
    if name not in _ENGINES:
        if name == "cpu":
            from face3d.shared.engines.cpu import CpuEngine

            engine: Engine = CpuEngine()
        elif name == "hrn":
            from face3d.shared.engines.hrn import HrnEngine

            engine = HrnEngine()
        else:
            from face3d.shared.errors import EngineUnavailable

            raise EngineUnavailable(f"unknown engine {name!r}; choose one of {', '.join(engine_names())}")
        engine.load()
        _ENGINES[name] = engine
    return _ENGINES[name]


__all__ = ["Engine", "Face", "Options", "Photo", "Reconstruction", "Camera", "get_engine", "engine_names"]
