"""The engines of a server, one per model, owned by the composition root.

``app.py`` creates an ``EngineRegistry`` and hands it down through each graph's load context to
nodes and Python handlers. Each user acquires an engine under an owner name (its servable);
two owners asking for one model with different options is an ``EngineConflict`` naming both;
when a servable unloads, ``release(owner)`` closes the engines nobody else uses.

Python handlers keep OVMS-era code unchanged with ``ovserve.engine.shared_engine(path)``: the
Python node binds the registry and the servable's name around every call into the handler
(``bound``), and ``shared_engine`` reads that binding. Called outside any servable (a script,
a notebook), it uses a process-wide registry closed at exit.
"""

from __future__ import annotations

import atexit
import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ovserve.engine import scope
from ovserve.engine.base import EngineConfig, LoraOptions
from ovserve.engine.cpu_properties import CpuTable
from ovserve.engine.devices import DeviceChoice
from ovserve.engine.embeddings import EmbeddingConfig, EmbeddingEngine
from ovserve.engine.interface import Engine
from ovserve.engine.model import ModelConfig, ModelEngine
from ovserve.engine.rerank import RerankConfig, RerankEngine
from ovserve.errors import EngineConflict, ServableNotFound

log = logging.getLogger(__name__)

EngineFactory = Callable[[EngineConfig], Engine]


def openvino_engine(config: EngineConfig) -> Engine:
    from ovserve.engine.client import OpenVINOEngine

    return OpenVINOEngine(config)


@dataclass
class _Entry:
    engine: Any  # an Engine, or an EmbeddingEngine in the embedding entries
    config: Any  # what the engine was built with (EngineConfig / EmbeddingConfig)
    owners: dict[str, dict[str, Any]] = field(default_factory=dict)  # owner -> options it gave


def embedding_engine(config: EmbeddingConfig) -> EmbeddingEngine:
    return EmbeddingEngine(config)


def model_engine(config: ModelConfig) -> ModelEngine:
    return ModelEngine(config)


def rerank_engine(config: RerankConfig) -> RerankEngine:
    return RerankEngine(config)


class EngineRegistry:
    """One engine per model directory, shared by every owner that asks for it."""

    def __init__(self, factory: EngineFactory = openvino_engine,
                 overrides: Mapping[str, Any] | None = None,
                 lora: LoraOptions | None = None,
                 embedding_factory: Callable[[EmbeddingConfig], EmbeddingEngine] =
                 embedding_engine, devices: DeviceChoice | None = None,
                 deterministic: bool = False,
                 model_factory: Callable[[ModelConfig], ModelEngine] = model_engine,
                 chat: Mapping[str, Any] | None = None,
                 rerank_factory: Callable[[RerankConfig], RerankEngine] = rerank_engine,
                 cpu_table: CpuTable | None = None) -> None:
        self.factory = factory
        self.devices = devices or DeviceChoice()  # --device / --plugin_config over the graphs
        #: properties per CPU family under LLM engines' plugin_config on CPU (None: this
        #: machine's table, on; ``CpuTable(enabled=False)``: --no_cpu_table)
        self.cpu_table = cpu_table if cpu_table is not None else CpuTable()
        self.embedding_factory = embedding_factory
        self.overrides = dict(overrides or {})  # generation defaults for every engine
        self.lora = lora  # LoRA adapters of every engine whose owners set none (--lora_dir)
        self.deterministic = deterministic  # --deterministic: every LLM engine
        #: chat template settings of every LLM engine (--chat_template,
        #: --trust_request_chat_template): EngineConfig fields
        self.chat = dict(chat or {})
        self._entries: dict[Path, _Entry] = {}
        self._embedding_entries: dict[Path, _Entry] = {}
        self.model_factory = model_factory
        self._model_entries: dict[Path, _Entry] = {}
        self.rerank_factory = rerank_factory
        self._rerank_entries: dict[Path, _Entry] = {}
        #: plain models by servable name and version, as graphs' session nodes find them
        self._named: dict[str, dict[int, ModelEngine]] = {}
        #: (graph, side packet name) -> the session a session node made for that graph
        self._sessions: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def acquire(self, owner: str, models_path: str | Path, **options: Any) -> Engine:
        """The engine of ``models_path`` for ``owner``, loaded on first use. ``options`` are
        ``EngineConfig`` fields; only those given must agree with other owners'."""
        path = Path(models_path).resolve()
        options = self.devices.apply(options)
        if self.deterministic:
            options["deterministic"] = True
        # the CPU table's properties under the plugin_config; the owner's options stay what it
        # asked for (two owners differ only in what they asked, not in the table's defaults)
        built, choice = self.cpu_table.apply(
            options, self.devices.properties(str(options.get("device", "CPU"))))
        with self._lock:
            entry = self._entries.get(path)
            if entry is None:
                options.setdefault("lora", self.lora)
                built.setdefault("lora", self.lora)
                if choice is not None:
                    log.info("engine %s: %s", path.name, choice.describe())
                config = EngineConfig(models_path=path, **built,
                                      generation_overrides=self.overrides, **self.chat)
                engine = self.factory(config)  # under the lock: one load per model
                entry = self._entries[path] = _Entry(engine, config)
            else:
                self._check(entry, owner, path, options, built)
            entry.owners.setdefault(owner, {}).update(options)
            llm: Engine = entry.engine
            return llm

    def acquire_embeddings(self, owner: str, models_path: str | Path, **options: Any
                           ) -> EmbeddingEngine:
        """The embedding engine of ``models_path`` for ``owner`` (``EmbeddingConfig``
        fields as options; those given must agree with other owners')."""
        path = Path(models_path).resolve()
        options = self.devices.apply(options)
        with self._lock:
            entry = self._embedding_entries.get(path)
            if entry is None:
                config = EmbeddingConfig(models_path=path, **options)
                entry = self._embedding_entries[path] = _Entry(
                    self.embedding_factory(config), config)
            else:
                self._check(entry, owner, path, options)
            entry.owners.setdefault(owner, {}).update(options)
            engine: EmbeddingEngine = entry.engine
            return engine

    def acquire_rerank(self, owner: str, models_path: str | Path, **options: Any
                       ) -> RerankEngine:
        """The rerank engine of ``models_path`` for ``owner`` (``RerankConfig`` fields as
        options; those given must agree with other owners')."""
        path = Path(models_path).resolve()
        options = self.devices.apply(options)
        options.pop("deterministic", None)
        with self._lock:
            entry = self._rerank_entries.get(path)
            if entry is None:
                config = RerankConfig(models_path=path, **options)
                entry = self._rerank_entries[path] = _Entry(self.rerank_factory(config), config)
            else:
                self._check(entry, owner, path, options)
            entry.owners.setdefault(owner, {}).update(options)
            engine: RerankEngine = entry.engine
            return engine

    def acquire_model(self, owner: str, path: str | Path, **options: Any) -> ModelEngine:
        """The engine of the plain model file ``path`` for ``owner`` (``ModelConfig`` fields
        as options; those given must agree with other owners')."""
        path = Path(path).resolve()
        options = self.devices.apply(options)
        options.pop("deterministic", None)
        with self._lock:
            entry = self._model_entries.get(path)
            if entry is None:
                config = ModelConfig(path=path, **options)
                entry = self._model_entries[path] = _Entry(self.model_factory(config), config)
            else:
                self._check(entry, owner, path, options)
            entry.owners.setdefault(owner, {}).update(options)
            engine: ModelEngine = entry.engine
            return engine

    def name_model(self, name: str, version: int, engine: ModelEngine) -> None:
        """Make ``engine`` findable as version ``version`` of servable ``name``."""
        with self._lock:
            self._named.setdefault(name, {})[version] = engine

    def unname_model(self, name: str, versions: Mapping[int, ModelEngine] | None = None
                     ) -> None:
        """``name`` no longer names a model; with ``versions``: only while it names exactly
        those engines (a reloaded model's old generation leaves the new one's named)."""
        with self._lock:
            named = self._named.get(name)
            if versions is not None and (named is None or named.keys() != versions.keys() or any(
                    named[v] is not engine for v, engine in versions.items())):
                return
            self._named.pop(name, None)

    def rename_owner(self, old: str, new: str) -> None:
        """What ``old`` uses is ``new``'s from now on (a config reload renames a servable's
        outgoing generation, so the incoming one acquires under the servable's name and
        shares every engine whose options did not change)."""
        with self._lock:
            for entries in (self._entries, self._embedding_entries, self._model_entries,
                            self._rerank_entries):
                for entry in entries.values():
                    if old in entry.owners:
                        entry.owners[new] = entry.owners.pop(old)
            for owner, packet in [k for k in self._sessions if k[0] == old]:
                self._sessions[(new, packet)] = self._sessions.pop((owner, packet))

    def model(self, owner: str, name: str, version: int | None = None) -> ModelEngine:
        """Version ``version`` (None: the latest loaded) of plain model ``name``, used by
        ``owner`` from now on (it stays loaded while ``owner`` uses it)."""
        with self._lock:
            versions = self._named.get(name)
            if not versions:
                served = ", ".join(sorted(self._named)) or "none"
                raise ServableNotFound(f"no model {name!r} is loaded (models: {served})")
            chosen = max(versions) if version is None else version
            engine = versions.get(chosen)
            if engine is None:
                raise ServableNotFound(
                    f"model {name!r} has no version {version} loaded (versions: "
                    f"{', '.join(map(str, sorted(versions)))})")
            for entry in self._model_entries.values():
                if entry.engine is engine:
                    entry.owners.setdefault(owner, {})
            return engine

    def bind_session(self, owner: str, packet: str, session: Any) -> None:
        """A graph's session node made ``session`` (its side packet ``packet``)."""
        with self._lock:
            self._sessions[(owner, packet)] = session

    def session(self, owner: str, packet: str) -> Any:
        """The session bound to side packet ``packet`` of graph ``owner``, or None."""
        with self._lock:
            return self._sessions.get((owner, packet))

    @staticmethod
    def _check(entry: _Entry, owner: str, path: Path, options: dict[str, Any],
               built: dict[str, Any] | None = None) -> None:
        """Another owner's ``options`` against those of the owners before it (an
        ``EngineConflict`` when two asked for different values) and the loaded engine's
        (a warning); ``built``: the options as the engine would be built from them (the CPU
        table's properties in the plugin_config), compared with the loaded config."""
        built = options if built is None else built
        for name, value in options.items():
            for other, given in entry.owners.items():
                if other != owner and name in given and given[name] != value:
                    conflict = EngineConflict(
                        f"graphs {other!r} and {owner!r} ask for model {path} with different "
                        f"{name}: {given[name]!r} and {value!r}; one engine serves a model, so "
                        "give them the same options")
                    conflict.owners = (other, owner)
                    raise conflict
            loaded = getattr(entry.config, name)
            # nobody asked for the loaded value by name: it stays
            if built.get(name, value) != loaded:
                log.warning("engine %s is already loaded with %s=%r; %s asked for %r",
                            path.name, name, loaded, owner, value)

    def release(self, owner: str) -> None:
        """``owner`` no longer uses its engines; close those nobody else uses."""
        closing = []
        with self._lock:
            for key in [k for k in self._sessions if k[0] == owner]:
                del self._sessions[key]
            for entries in (self._entries, self._embedding_entries, self._model_entries,
                            self._rerank_entries):
                for path, entry in list(entries.items()):
                    if entry.owners.pop(owner, None) is not None and not entry.owners:
                        del entries[path]
                        closing.append(entry.engine)
        for engine in closing:
            log.info("engine %s: closing (no servable uses it)", engine.name)
            engine.close()

    def engines(self, owner: str | None = None) -> list[Engine]:
        with self._lock:
            return [e.engine for e in self._entries.values()
                    if owner is None or owner in e.owners]

    def end_requests(self, reason: str) -> int:
        """End every LLM engine's active requests (a shutdown out of grace); how many."""
        return sum(engine.end_requests(reason) for engine in self.engines())

    def ready(self, owner: str | None = None) -> bool:
        """Every engine (of ``owner``) can take requests."""
        return all(engine.ready for engine in self.engines(owner))

    def close(self) -> None:
        with self._lock:
            engines = [e.engine for e in (*self._entries.values(),
                                           *self._embedding_entries.values(),
                                           *self._model_entries.values(),
                                           *self._rerank_entries.values())]
            self._entries.clear()
            self._embedding_entries.clear()
            self._model_entries.clear()
            self._rerank_entries.clear()
            self._named.clear()
            self._sessions.clear()
        for engine in engines:
            engine.close()


# -- the handlers' entry point -----------------------------------------------------------------

_binding: contextvars.ContextVar[tuple[EngineRegistry, str] | None] = contextvars.ContextVar(
    "ovserve_engine_binding", default=None)
_process_registry: EngineRegistry | None = None
_process_lock = threading.Lock()


@contextlib.contextmanager
def bound(registry: EngineRegistry, owner: str, adapter: str | None = None) -> Iterator[None]:
    """Within this block (this thread or task), ``shared_engine`` uses ``registry`` for
    ``owner``, and requests a handler prepares run on LoRA ``adapter`` (the model name a
    KServe request asked for) unless they name one."""
    token = _binding.set((registry, owner))
    try:
        with scope.on_adapter(adapter):
            yield
    finally:
        _binding.reset(token)


def process_registry() -> EngineRegistry:
    """The registry ``shared_engine`` uses outside any servable."""
    global _process_registry
    with _process_lock:
        if _process_registry is None:
            _process_registry = EngineRegistry()
            atexit.register(_process_registry.close)
        return _process_registry


def shared_engine(models_path: str | Path, **options: Any) -> Any:
    """The engine for ``models_path``, shared with every other user of that model (for
    Python handlers: call it in ``initialize``). ``options``: ``EngineConfig`` fields.

    Typed ``Any`` for handlers' sake; it is an ``Engine`` (an ``OpenVINOEngine`` unless the
    server was given another engine factory)."""
    binding = _binding.get()
    registry, owner = binding if binding is not None else (process_registry(), "process")
    return registry.acquire(owner, models_path, **options)
