"""Generation engines behind one typed interface (``engine.interface.Engine``).

    engine = shared_engine(models_path)                 # in a handler's initialize
    prepared = engine.prepare(prompt, SamplingParams(max_tokens=64))
    for delta in engine.submit(prepared).deltas(): ...  # raises EngineError on failure

Modules: ``interface`` (the ``Engine`` protocol), ``base`` (its plain types), ``limits``
(generation length and prompt precedence), ``requests`` (request bookkeeping and readers),
``client`` (the openvino-genai engine as the server sees it, supervising its process),
``process`` (the engine process), ``messages`` (what crosses between them), ``registry``
(engines owned by the server), ``fake`` (a deterministic engine for tests).
"""

from __future__ import annotations

from ovserve.engine.base import Delta, EngineConfig, EngineStats, Prepared, SamplingParams
from ovserve.engine.interface import Engine
from ovserve.engine.limits import GenerationLimits
from ovserve.engine.registry import EngineRegistry, bound, shared_engine
from ovserve.engine.requests import Batch, Generation

__all__ = ["Batch", "Delta", "Engine", "EngineConfig", "EngineRegistry", "EngineStats",
           "Generation", "GenerationLimits", "Prepared", "SamplingParams", "bound",
           "shared_engine"]
