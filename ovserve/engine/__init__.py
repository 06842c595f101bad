"""Generation engines, shared per model by every request and servable in the process.

Python handlers get the shared engine with ``shared_engine(models_path)``; the first call
loads the model, later calls with the same path return the same engine.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ovserve.engine.base import Delta, EngineStats, SamplingParams
from ovserve.engine.openvino_genai import Batch, EngineConfig, Generation, OpenVINOEngine

_engines: dict[Path, OpenVINOEngine] = {}
_lock = threading.Lock()


def shared_engine(models_path: str | Path, **options: Any) -> OpenVINOEngine:
    """The process-wide engine for ``models_path`` (options apply when it is first loaded)."""
    path = Path(models_path).resolve()
    with _lock:
        engine = _engines.get(path)
        if engine is None:
            engine = OpenVINOEngine(EngineConfig(models_path=path, **options))
            _engines[path] = engine
        return engine


def loaded_engines() -> list[OpenVINOEngine]:
    with _lock:
        return list(_engines.values())


__all__ = ["Batch", "Delta", "EngineConfig", "EngineStats", "Generation", "OpenVINOEngine",
           "SamplingParams", "loaded_engines", "shared_engine"]
